-- Heavy mode in Neovim: the "(K2 heavy ×3)" variant of "Fix failing test" runs three scripted
-- candidates; the winner (c3, one line) lands in calc.py's buffer. :K2Candidates lists every
-- candidate with its evidence and cost; choosing c2 previews its diff in a scratch split (no
-- k2lsp client on it) and taking it undoes the winner and puts c2's rewrite in the buffer.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  H.capture_notify()
  H.result.prompts, H.result.items = {}, {}
  vim.ui.select = function(items, opts, on_choice)
    table.insert(H.result.prompts, opts.prompt)
    if #H.result.prompts == 1 then -- the candidate list: record it, choose c2
      local pick = nil
      for i, it in ipairs(items) do
        H.result.items[i] = opts.format_item(it)
        pick = it.label == "c2" and i or pick
      end
      return on_choice(pick and items[pick], pick)
    end
    H.result.take_choices = items
    on_choice(items[1], 1) -- "Take c2 instead of the winner"
  end
  local root = H.start("tests/test_calc.py", { heavyCandidates = 3, testCommand = os.getenv("K2_TEST_CMD") })
  local heavy, status = require("k2lsp.heavy"), require("k2lsp.status")
  local calc = root .. "/calc.py"
  H.cursor_below("def test_add")
  H.result.action_titles = H.apply_action(function(t)
    return t:find("Fix failing test", 1, true) ~= nil and t:find("(K2 heavy ×3)", 1, true) ~= nil
  end)
  H.wait("selected", 240000, function()
    return heavy.latest ~= nil and heavy.runs[heavy.latest].selected
  end)
  local run_id = heavy.latest
  H.result.run_id = run_id
  H.wait("winner_delivered", 120000, function()
    local r = run_id and status.runs[run_id]
    return r ~= nil and r.delivery == "applied"
      and table.concat(H.buffer_lines(calc), "\n"):find("a + b", 1, true) ~= nil
  end)
  H.result.winner = run_id and heavy.runs[run_id].winner
  H.result.calc_winner = H.buffer_lines(calc)
  vim.cmd("K2Candidates")
  local preview = vim.fn.bufnr("k2lsp://candidate/" .. tostring(run_id) .. "/c2")
  H.result.preview = preview ~= -1 and vim.api.nvim_buf_get_lines(preview, 0, -1, false) or {}
  H.result.preview_shown = preview ~= -1 and vim.fn.bufwinid(preview) ~= -1
  H.result.preview_filetype = preview ~= -1 and vim.bo[preview].filetype or ""
  H.result.preview_clients = preview ~= -1 and #vim.lsp.get_clients({ bufnr = preview }) or -1
  H.wait("taken", 120000, function()
    local said = false
    for _, n in ipairs(H.result.notes) do
      said = said or n.msg:find("took c2 of run", 1, true) ~= nil
    end
    return said and table.concat(H.buffer_lines(calc), "\n"):find("TypeError", 1, true) ~= nil
  end)
  H.result.calc_taken = H.buffer_lines(calc)
  H.result.clients = #vim.lsp.get_clients({ name = "k2lsp" })
  -- the server keeps no candidate after one is taken: the list is empty and says so
  vim.cmd("K2Candidates")
  H.result.prompts_after = #H.result.prompts
end)
