-- A diagnostic from another source (here a linter's own vim.diagnostic namespace) gets
-- "K2: Fix …" through the ordinary vim.lsp.buf.code_action, as the preferred action, and the
-- fix lands in the buffer.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  local root = H.start("calc.py")
  local ns = vim.api.nvim_create_namespace("fake-linter")
  vim.diagnostic.set(ns, 0, {
    { lnum = 1, col = 4, end_lnum = 1, end_col = 16, severity = vim.diagnostic.severity.ERROR,
      message = "W999 add() subtracts its arguments", source = "fakelint", code = "W999" },
  })
  vim.api.nvim_win_set_cursor(0, { 2, 6 })
  local items = {}
  vim.ui.select = function(choices, opts, on_choice)
    for i, c in ipairs(choices) do
      local action = c.action or c[2] or c
      table.insert(items, { title = action.title, preferred = action.isPreferred == true })
      if (action.title or ""):find("K2: Fix W999", 1, true) then
        return on_choice(c, i)
      end
    end
    on_choice(nil, nil)
  end
  vim.lsp.buf.code_action()
  H.wait("offered", 20000, function() return #items > 0 end)
  H.result.actions = items
  H.wait_run_finished(180000)
  H.wait_buffer_has("buffer_changed", 60000, root .. "/calc.py", "a + b")
  H.result.calc_buffer = H.buffer_lines(root .. "/calc.py")
end)
