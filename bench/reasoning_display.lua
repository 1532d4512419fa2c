-- bench/reasoning_display.py, Neovim side: N `:K2Ask` runs one after the other; the moment a
-- run's marker (MK<i>Q, the start of its reasoning) lands in the output panel's buffer is
-- recorded (wall clock, on_lines of the buffer) in result.shown[i].
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h")
  .. "/../editors/nvim/tests/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  H.setup()
  local root = assert(os.getenv("K2_ROOT"))
  local n = tonumber(assert(os.getenv("K2_RUNS")))
  if not H.open(root .. "/calc.py") then
    error("k2lsp client did not start")
  end
  local output = require("k2lsp.output")
  local shown = {}
  H.result.shown = shown
  vim.api.nvim_buf_attach(output.buf(), false, {
    on_lines = function(_, buf, _, first, _, last_new)
      local now_s, now_us = vim.uv.gettimeofday()
      for _, line in ipairs(vim.api.nvim_buf_get_lines(buf, first, last_new, false)) do
        for i in line:gmatch("MK(%d+)Q") do
          if shown[i] == nil then
            shown[i] = now_s + now_us / 1e6
          end
        end
      end
    end,
  })
  local status = require("k2lsp.status")
  for i = 1, n do
    vim.cmd("K2Ask question " .. i)
    local ok = vim.wait(120000, function()
      local r = status.last()
      return shown[tostring(i)] ~= nil and r ~= nil and r.outcome ~= nil and r.tokens ~= nil
        and table.concat(output.lines(), "\n"):find("ANSWER" .. i .. "END", 1, true) ~= nil
    end, 5)
    if not ok then
      error("run " .. i .. " did not finish")
    end
  end
end)
