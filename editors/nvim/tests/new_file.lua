-- A run creates a file: it must land as a listed buffer k2lsp knows (not behind the editor's
-- back), `u` in it removes K2's text; a second run's new file goes away with :K2Undo (buffer
-- and file, no E211). A third run deletes a file: its buffer goes with it.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

local function run_task(task)
  local status = require("k2lsp.status")
  local run_id = nil
  require("k2lsp").exec("k2lsp.task", { uri = vim.uri_from_bufnr(0), task = task }, function(r)
    run_id = r and r.runId
  end)
  vim.wait(120000, function()
    local r = run_id and status.runs[run_id]
    return r ~= nil and r.outcome ~= nil and r.delivery ~= nil
  end, 10)
  local r = run_id and status.runs[run_id] or {}
  return { outcome = r.outcome, delivery = r.delivery }
end

local function buf_of(path)
  local b = vim.fn.bufnr(path)
  return b ~= -1 and vim.api.nvim_buf_is_loaded(b) and b or nil
end

local function attached(buf)
  return #vim.lsp.get_clients({ bufnr = buf, name = "k2lsp" }) == 1
end

H.run(function()
  H.capture_notify()
  local root = H.start("calc.py")
  local calc = vim.api.nvim_get_current_buf()
  -- run 1 creates notes.py
  H.result.first = run_task("write notes")
  local notes = buf_of(root .. "/notes.py")
  H.mark("notes_buffer", notes ~= nil)
  if notes then
    H.result.notes_lines = vim.api.nvim_buf_get_lines(notes, 0, -1, false)
    H.result.notes_listed = vim.bo[notes].buflisted
    H.mark("notes_attached", vim.wait(5000, function() return attached(notes) end, 10))
    vim.api.nvim_set_current_buf(notes)
    vim.cmd("silent normal! u")
    H.result.notes_after_u = vim.api.nvim_buf_get_lines(notes, 0, -1, false)
    vim.api.nvim_set_current_buf(calc)
  end
  -- run 2 creates extra.py; :K2Undo takes it away again
  H.result.second = run_task("write extra")
  local extra = buf_of(root .. "/extra.py")
  H.mark("extra_buffer", extra ~= nil)
  H.mark("extra_attached", extra ~= nil and vim.wait(5000, function() return attached(extra) end, 10))
  H.result.extra_lines = extra and vim.api.nvim_buf_get_lines(extra, 0, -1, false) or {}
  vim.cmd("K2Undo")
  H.mark("extra_gone", vim.wait(10000, function()
    return buf_of(root .. "/extra.py") == nil and vim.uv.fs_stat(root .. "/extra.py") == nil
  end, 10))
  -- run 3 deletes old.py, which is open in a buffer
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/old.py"))
  vim.wait(5000, function() return attached(0) end, 10)
  vim.api.nvim_set_current_buf(calc)
  H.result.third = run_task("remove old")
  H.mark("old_gone", vim.wait(10000, function()
    return buf_of(root .. "/old.py") == nil and vim.uv.fs_stat(root .. "/old.py") == nil
  end, 10))
end)
