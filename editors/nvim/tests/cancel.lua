-- Start a run whose model reply stalls after its first chunk, then :K2Cancel it.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  local root = H.start("calc.py")
  vim.cmd("K2Task Explain every function of this module in great detail")
  H.wait("streaming", 120000, function()
    return table.concat(require("k2lsp.output").lines(), "\n"):find("Pondering", 1, true) ~= nil
  end)
  if os.getenv("K2_SKIP_CANCEL") ~= "1" then
    vim.cmd("K2Cancel")
  end
  H.wait_run_finished(tonumber(os.getenv("K2_FINISH_WAIT_MS") or "120000"))
end)
