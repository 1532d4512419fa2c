-- Neovim 0.11's way: vim.lsp.enable('k2lsp') with lsp/k2lsp.lua from the plugin's runtimepath,
-- no setup{} call; the client attaches, opts in to the stream and answers a command.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  -- no setup{}, no vim.lsp.config: k2lsp comes from $PATH as a user's install would
  vim.cmd("filetype on") -- -u NONE leaves it off; vim.lsp.enable attaches on FileType
  vim.lsp.enable("k2lsp")
  local root = assert(os.getenv("K2_ROOT"))
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/calc.py"))
  H.wait("client_ready", 60000, function()
    local c = vim.lsp.get_clients({ name = "k2lsp", bufnr = 0 })[1]
    return c ~= nil and c.initialized
  end)
  local c = vim.lsp.get_clients({ name = "k2lsp", bufnr = 0 })[1]
  H.result.root_dir = c and c.root_dir or vim.NIL
  H.result.has_stream_handler = c ~= nil and c.handlers["k2lsp/stream"] ~= nil
  local res = c and c:request_sync("workspace/executeCommand",
    { command = "k2lsp.status", arguments = { vim.empty_dict() } }, 30000, 0)
  H.result.status = res and res.result or vim.NIL
end)
