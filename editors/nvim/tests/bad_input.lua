-- Bad input gets clear, actionable messages: a wrong server path, :K2Ask without a question,
-- :K2Cancel with no server, and :checkhealth k2lsp reporting the broken path.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  H.capture_notify()
  require("k2lsp").setup({ cmd = { "/nonexistent/bin/k2lsp", "--stdio" } })
  vim.cmd("edit " .. vim.fn.fnameescape(assert(os.getenv("K2_ROOT")) .. "/calc.py"))
  vim.wait(2000, function() return false end)
  H.mark("clients", #vim.lsp.get_clients({ name = "k2lsp" }))
  vim.cmd("K2Ask")
  vim.cmd("K2Cancel")
  vim.cmd("checkhealth k2lsp")
  H.result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end)
