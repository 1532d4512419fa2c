-- api_key_cmd as users configure it: run once, asynchronously, with failures reported through
-- vim.notify and no Lua error. $K2_KEY_CMD picks the case: "missing" (a program that does not
-- exist) or "slow" (a script that counts its runs in $K2_KEY_COUNT and prints a key late).
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  H.capture_notify()
  local root = assert(os.getenv("K2_ROOT"))
  local case = assert(os.getenv("K2_KEY_CMD"))
  local cmd
  if case == "missing" then
    cmd = { "/nonexistent/bin/pass", "show", "moonshot" }
  else
    cmd = { "sh", "-c", 'echo run >> "$K2_KEY_COUNT"; sleep 1; echo sk-from-key-cmd-0123456789abcdef' }
  end
  require("k2lsp").setup({
    cmd = { assert(os.getenv("K2TEST_BIN")), "--stdio" },
    settings = { sandbox = "none", maxSteps = 20 },
    api_key_cmd = cmd,
  })
  -- setup{} returned while the command still runs (it is asynchronous)
  H.result.state_after_setup = require("k2lsp.key").state
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/calc.py"))
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/test_calc.py"))
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/calc.py"))
  H.wait("client_ready", 60000, function()
    local c = require("k2lsp").client()
    return c ~= nil and c.initialized
  end)
  H.result.key_state = require("k2lsp.key").state
  H.result.clients = #vim.lsp.get_clients({ name = "k2lsp" })
  H.result.attached = #vim.lsp.get_clients({ name = "k2lsp", bufnr = 0 })
  -- the server says what it has: ask it for its setup checks
  local client = require("k2lsp").client()
  local res = client:request_sync("workspace/executeCommand",
    { command = "k2lsp.checkSetup", arguments = { vim.empty_dict() } }, 60000, 0)
  H.result.setup = res and res.result or vim.NIL
  if case == "missing" then
    -- a run says there is no key, through the standard message channel
    vim.cmd("K2Ask why does add subtract?")
    H.wait("no_key_said", 60000, function()
      for _, n in ipairs(H.result.notes) do
        if n.msg:find("no API key", 1, true) then
          return true
        end
      end
      return false
    end)
  end
  vim.cmd("checkhealth k2lsp")
  H.result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end)
