-- Review per hunk with `preview` on: a run proposes two hunks in calc.py. They show up in the
-- real buffer (extmarks, virtual lines) without touching the user's window or asking anything;
-- the user types on line 1, moves with ]h, accepts the first hunk from the :K2Review list and
-- rejects the second from the buffer; the rejected hunk's saved patch applies later with
-- :K2ApplyPatch. A second run's new file is accepted from the output window and lands as a
-- buffer that `u` empties.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  H.capture_notify()
  local root = H.start("calc.py", { preview = true })
  local review = require("k2lsp.review")
  local status = require("k2lsp.status")
  local win, calc = vim.api.nvim_get_current_win(), vim.api.nvim_get_current_buf()
  vim.api.nvim_win_set_cursor(win, { 1, 0 })
  local run_id
  require("k2lsp").exec("k2lsp.task", { uri = vim.uri_from_bufnr(calc), task = "fix calc" }, function(r)
    run_id = r and r.runId
  end)
  H.wait("review_shown", 120000, function() return #review.pending() == 1 end)
  -- the user's window still shows calc.py with the cursor where it was; nothing was asked
  H.result.same_window = vim.api.nvim_get_current_win() == win and vim.api.nvim_win_get_buf(win) == calc
  H.result.cursor = vim.api.nvim_win_get_cursor(win)
  H.result.buffer_during_review = vim.api.nvim_buf_get_lines(calc, 0, -1, false)
  local virt, signs = {}, 0
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(calc, review.ns, 0, -1, { details = true })) do
    for _, vl in ipairs(m[4].virt_lines or {}) do
      virt[#virt + 1] = vl[1][1]
    end
    if m[4].sign_text then
      signs = signs + 1
    end
  end
  H.result.virtual_lines, H.result.signs = virt, signs
  -- the user types on line 1 while the review waits
  vim.api.nvim_buf_set_lines(calc, 0, 1, false, { '"""Small calculator, reviewed."""' })
  -- ]h moves to the first hunk (the `return a - b` line)
  vim.cmd("normal ]h")
  H.result.after_next = vim.api.nvim_win_get_cursor(win)[1]
  -- accept it from the :K2Review list: the list gets no k2lsp client of its own
  local list = review.open_list()
  H.result.list_lines = vim.api.nvim_buf_get_lines(list, 0, -1, false)
  local at = H.line_of(list, "-    return a - b")
  vim.api.nvim_win_set_cursor(0, { at, 0 })
  vim.cmd("K2Accept")
  H.wait("first_accepted", 30000, function()
    local h = review.pending()[1].hunks[1]
    return h.state == "accepted" and vim.api.nvim_buf_get_lines(calc, 4, 5, false)[1] == "    return a + b"
  end)
  H.result.list_clients = #vim.lsp.get_clients({ bufnr = list })
  H.result.clients = #vim.lsp.get_clients({ name = "k2lsp" })
  -- reject the second hunk from the buffer, with the cursor on it
  H.result.second_at = H.first_hunk(win)
  vim.cmd("K2Reject")
  H.wait("delivered", 30000, function()
    local r = run_id and status.runs[run_id]
    return r ~= nil and r.outcome ~= nil and r.delivery ~= nil and r.delivery ~= "preview"
  end)
  H.result.delivery = run_id and status.runs[run_id].delivery
  H.result.buffer_after_review = vim.api.nvim_buf_get_lines(calc, 0, -1, false)
  H.result.marks_left = #vim.api.nvim_buf_get_extmarks(calc, review.ns, 0, -1, {})
  -- the saved patch: its path is in the message; :K2ApplyPatch applies it later
  local patch = status.runs[run_id].patch
  H.result.patch = patch or vim.NIL
  H.result.messages = vim.api.nvim_exec2("messages", { output = true }).output
  if patch then
    vim.cmd("K2ApplyPatch " .. vim.fn.fnameescape(patch))
    H.wait("patch_applied", 30000, function()
      return vim.api.nvim_buf_get_lines(calc, 8, 9, false)[1] == "    return b * a"
    end)
  end
  H.result.buffer_after_patch = vim.api.nvim_buf_get_lines(calc, 0, -1, false)
  H.result.window_buffer = vim.api.nvim_win_get_buf(win) == calc
  -- a second run proposes a new file: `:K2Accept all` typed in the output window (no hunk
  -- under the cursor there) creates it as a buffer, and `u` in it takes K2's text out
  local second
  require("k2lsp").exec("k2lsp.task", { uri = vim.uri_from_bufnr(calc), task = "notes" }, function(r)
    second = r and r.runId
  end)
  H.wait("second_review", 120000, function() return #review.pending() == 1 end)
  local out = require("k2lsp.output").windows()[1]
  H.mark("output_window", out ~= nil)
  vim.api.nvim_set_current_win(out or win)
  vim.cmd("K2Accept")
  H.result.no_hunk_note = H.result.notes[#H.result.notes].msg
  vim.cmd("K2Accept all")
  H.wait("second_delivered", 30000, function()
    local r = second and status.runs[second]
    return r ~= nil and r.delivery == "applied" and r.outcome ~= nil
  end)
  local notes = vim.fn.bufnr(root .. "/notes.py")
  H.mark("notes_buffer", notes ~= -1 and vim.api.nvim_buf_is_loaded(notes))
  if notes ~= -1 then
    H.result.notes_lines = vim.api.nvim_buf_get_lines(notes, 0, -1, false)
    vim.api.nvim_set_current_win(win)
    vim.api.nvim_set_current_buf(notes)
    vim.cmd("silent normal! u")
    H.result.notes_after_u = vim.api.nvim_buf_get_lines(notes, 0, -1, false)
  end
  -- a third run proposes a change on a line the user then edits: accepting it applies nothing
  -- and says why; the user's text stays
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_set_current_buf(calc)
  local third
  require("k2lsp").exec("k2lsp.task", { uri = vim.uri_from_bufnr(calc), task = "mul" }, function(r)
    third = r and r.runId
  end)
  H.wait("third_review", 120000, function() return #review.pending() == 1 end)
  local at9 = H.line_of(calc, "return b * a")
  vim.api.nvim_buf_set_lines(calc, at9 - 1, at9, false, { "    return b * a  # mine" })
  vim.api.nvim_win_set_cursor(win, { at9, 0 })
  vim.cmd("K2Accept")
  H.wait("third_delivered", 30000, function()
    local r = third and status.runs[third]
    return r ~= nil and r.delivery ~= nil and r.delivery ~= "preview" and r.outcome ~= nil
  end)
  H.result.third_delivery = third and status.runs[third].delivery or vim.NIL
  H.result.buffer_after_conflict = vim.api.nvim_buf_get_lines(calc, 0, -1, false)
  H.result.final_clients = #vim.lsp.get_clients({ name = "k2lsp" })
end)
