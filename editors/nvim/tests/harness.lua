-- Test harness for headless Neovim runs driven by tests/test_editor_nvim.py: reads its inputs
-- from the environment, records observations in a JSON file, and always exits.
local H = {}

H.result = { errors = {}, marks = {} }
H.result_path = assert(os.getenv("K2_RESULT"), "K2_RESULT not set")

--- Write the result file and quit Neovim.
function H.finish()
  local f = assert(io.open(H.result_path, "w"))
  f:write(vim.json.encode(H.result))
  f:close()
  vim.cmd("qa!")
end

--- Record a named observation.
function H.mark(name, value)
  H.result.marks[name] = value
end

--- Wait up to `ms` for `cond`; record whether it held under `name`.
function H.wait(name, ms, cond)
  local ok = vim.wait(ms, function()
    local good, v = pcall(cond)
    return good and v
  end, 100)
  H.mark(name, ok)
  return ok
end

--- Record every vim.notify message in result.notes (the plugin reports problems this way).
function H.capture_notify()
  H.result.notes = {}
  vim.notify = function(msg, level)
    table.insert(H.result.notes, { msg = tostring(msg), level = level or vim.log.levels.INFO })
  end
end

--- Set up k2lsp against the server given in $K2TEST_BIN with the sandbox off; `settings` (optional)
--- adds to or overrides the server settings.
function H.setup(settings)
  require("k2lsp").setup({
    cmd = { assert(os.getenv("K2TEST_BIN")), "--stdio" },
    settings = vim.tbl_extend("force", { sandbox = "none", maxSteps = 20 }, settings or {}),
  })
end

--- Open `path` and wait until the k2lsp client is attached and initialized.
function H.open(path)
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  return H.wait("client_ready", 60000, function()
    local c = require("k2lsp").client()
    return c ~= nil and c.initialized and #vim.lsp.get_clients({ bufnr = 0, name = "k2lsp" }) == 1
  end)
end

--- H.setup(settings), then open `rel` (a path under $K2_ROOT) with the client ready, or raise;
--- returns $K2_ROOT.
function H.start(rel, settings)
  H.setup(settings)
  local root = assert(os.getenv("K2_ROOT"))
  if not H.open(root .. "/" .. rel) then
    error("k2lsp client did not start")
  end
  return root
end

--- Put the cursor in column 4 of the line below the (last) line of the current buffer that
--- contains `text` (plain).
function H.cursor_below(text)
  for i, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
    if l:find(text, 1, true) then
      vim.api.nvim_win_set_cursor(0, { i + 1, 4 })
    end
  end
end

--- vim.lsp.buf.code_action applying the action whose title satisfies `pick(title)`; returns the
--- list that collects every offered title.
function H.apply_action(pick)
  local titles = {}
  vim.lsp.buf.code_action({
    apply = true,
    filter = function(a)
      table.insert(titles, a.title)
      return pick(a.title or "")
    end,
  })
  return titles
end

--- Lines of the buffer holding `path` (empty when not loaded).
function H.buffer_lines(path)
  local buf = vim.fn.bufnr(path)
  if buf == -1 then
    return {}
  end
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

--- Wait up to `ms` for the buffer holding `path` to contain `text` (plain); recorded as `name`.
function H.wait_buffer_has(name, ms, path, text)
  return H.wait(name, ms, function()
    return table.concat(H.buffer_lines(path), "\n"):find(text, 1, true) ~= nil
  end)
end

--- Wait up to `ms` for the last run to have an outcome; recorded as "run_finished".
function H.wait_run_finished(ms)
  return H.wait("run_finished", ms, function()
    local r = require("k2lsp.status").last()
    return r ~= nil and r.outcome ~= nil
  end)
end

--- 1-based number of the first line of `buf` containing `text` (plain), or nil.
function H.line_of(buf, text)
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l:find(text, 1, true) then
      return i
    end
  end
  return nil
end

--- Put the cursor on the first K2 hunk of the buffer in `win` (]h from the top); its line.
function H.first_hunk(win)
  vim.api.nvim_set_current_win(win)
  vim.api.nvim_win_set_cursor(win, { 1, 0 })
  vim.cmd("normal ]h")
  return vim.api.nvim_win_get_cursor(win)[1]
end

--- Run `fn`, recording any error, then finish.
function H.run(fn)
  local ok, err = xpcall(fn, debug.traceback)
  if not ok then
    table.insert(H.result.errors, tostring(err))
  end
  local okl, lines = pcall(require("k2lsp.output").lines)
  H.result.output = okl and lines or {}
  local last = require("k2lsp.status").last()
  H.result.last_run = last and vim.deepcopy(last) or vim.NIL
  H.result.statusline = require("k2lsp").statusline()
  H.finish()
end

return H
