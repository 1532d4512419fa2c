-- :checkhealth k2lsp with no k2lsp client running: the plugin asks `k2lsp doctor --setup --json`.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  require("k2lsp").setup({ cmd = { assert(os.getenv("K2TEST_BIN")), "--stdio" }, filetypes = { "none" } })
  vim.cmd("cd " .. vim.fn.fnameescape(assert(os.getenv("K2_ROOT"))))
  vim.cmd("checkhealth k2lsp")
  H.result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end)
