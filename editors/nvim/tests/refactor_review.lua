-- A repository-wide refactor job reviewed from Neovim: :K2RefactorRepo starts the job; when it
-- ends, its whole branch comes as ONE review, files grouped by batch. While the review waits
-- the user types into use.py (open in their window) on a line the job did not touch, accepts
-- use.py with `:K2Accept file` on one of its hunks, rejects calc.py with `:K2Reject file` from
-- the :K2Review list and test_calc.py with `:K2Reject all`. Then the saved patch is opened
-- (no k2lsp client for it) and :K2Undo takes use.py back to the user's text.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

local function clients(buf)
  return #vim.lsp.get_clients({ bufnr = buf, name = "k2lsp" })
end

H.run(function()
  H.capture_notify()
  local root = H.start("use.py")
  local review = require("k2lsp.review")
  local status = require("k2lsp.status")
  local win, use = vim.api.nvim_get_current_win(), vim.api.nvim_get_current_buf()
  vim.cmd("K2RefactorRepo " .. assert(os.getenv("K2_TASK")))
  local rev
  H.wait("review_shown", 240000, function()
    rev = review.pending()[1]
    return rev ~= nil and vim.startswith(rev.id, "job-")
  end)
  if not rev then
    error("no review of the job arrived")
  end
  H.result.run_id = rev.id
  H.result.files = {}
  for _, f in ipairs(rev.files) do
    H.result.files[#H.result.files + 1] = { path = f.path, group = f.group or "", hunks = #f.hunks }
  end
  -- nothing landed yet; the user's window and buffer are as they were
  H.result.same_window = vim.api.nvim_get_current_win() == win and vim.api.nvim_win_get_buf(win) == use
  H.result.use_during_review = vim.api.nvim_buf_get_lines(use, 0, -1, false)
  -- the user types a new line below BASE (a line the job does not touch), in insert mode
  local base = assert(H.line_of(use, "BASE = 10"), "no BASE line in use.py")
  vim.api.nvim_win_set_cursor(win, { base, 0 })
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("oEXTRA = BASE * 2<Esc>", true, false, true), "xt", false)
  H.result.use_typed = vim.api.nvim_buf_get_lines(use, 0, -1, false)
  -- the review list: every hunk under its batch; it has no language client of its own
  local list = review.open_list()
  H.result.list_lines = vim.api.nvim_buf_get_lines(list, 0, -1, false)
  H.result.list_clients = #vim.lsp.get_clients({ bufnr = list })
  -- accept use.py as a whole: `:K2Accept file` with the cursor on one of its hunks (]h)
  H.result.hunk_at = H.first_hunk(win)
  vim.cmd("K2Accept file")
  H.wait("use_accepted", 60000, function()
    for _, h in ipairs(rev.hunks) do
      if h.file.path == "use.py" and h.state ~= "accepted" then
        return false
      end
    end
    return H.line_of(use, "from calc import plus") ~= nil
  end)
  H.result.states_after_accept = {}
  for _, h in ipairs(rev.hunks) do
    H.result.states_after_accept[#H.result.states_after_accept + 1] = h.file.path .. ":" .. h.state
  end
  -- reject calc.py from the list: `:K2Reject file` on its hunk's lines
  list = review.open_list()
  local at = H.line_of(list, "@@ calc.py ")
  if at then
    vim.api.nvim_win_set_cursor(0, { at, 0 })
    vim.cmd("K2Reject file")
  end
  H.wait("calc_rejected", 60000, function()
    for _, h in ipairs(rev.hunks) do
      if h.file.path == "calc.py" and h.state ~= "rejected" then
        return false
      end
    end
    return true
  end)
  H.result.list_after_reject = vim.api.nvim_buf_get_lines(list, 0, -1, false)
  -- the rest (test_calc.py) rejected at once; that ends the review
  vim.cmd("K2Reject all")
  H.wait("delivered", 60000, function()
    local r = status.runs[rev.id]
    return r ~= nil and r.delivery ~= nil and r.delivery ~= "preview"
  end)
  local r = status.runs[rev.id] or {}
  H.result.delivery = r.delivery or vim.NIL
  H.result.patch = r.patch or vim.NIL
  H.result.pending_after = #review.pending()
  H.result.use_after_review = vim.api.nvim_buf_get_lines(use, 0, -1, false)
  -- the user saves: the merged text is what reaches the disk
  vim.api.nvim_buf_call(use, function() vim.cmd("silent write") end)
  H.result.use_disk = vim.fn.readfile(root .. "/use.py")
  H.result.calc_buffer = H.buffer_lines(root .. "/calc.py")
  H.result.test_buffer = H.buffer_lines(root .. "/test_calc.py")
  H.result.marks_left = #vim.api.nvim_buf_get_extmarks(use, review.ns, 0, -1, {})
  H.result.messages = vim.api.nvim_exec2("messages", { output = true }).output
  -- once the review is over, `:K2Accept file` says so (it is not a run id)
  local n = #H.result.notes
  vim.cmd("K2Accept file")
  H.result.late_note = #H.result.notes > n and H.result.notes[#H.result.notes].msg or vim.NIL
  -- the saved patch opens as a plain file: no k2lsp client for it, one client in all
  if r.patch then
    vim.cmd("split " .. vim.fn.fnameescape(r.patch))
    local pbuf = vim.api.nvim_get_current_buf()
    H.result.patch_lines = vim.api.nvim_buf_get_lines(pbuf, 0, -1, false)
    H.result.patch_clients = #vim.lsp.get_clients({ bufnr = pbuf })
    vim.cmd("close")
  end
  H.result.clients = #vim.lsp.get_clients({ name = "k2lsp" })
  H.result.buffer_clients = { use = clients(use), calc = clients(vim.fn.bufnr(root .. "/calc.py")) }
  -- :K2Undo takes the accepted file back to the user's text (their line stays)
  vim.api.nvim_set_current_win(win)
  vim.cmd("K2Undo")
  H.wait("undone", 60000, function() return H.line_of(use, "from calc import add") ~= nil end)
  H.result.use_after_undo = vim.api.nvim_buf_get_lines(use, 0, -1, false)
end)
