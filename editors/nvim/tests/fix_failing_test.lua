-- Apply "K2: Fix failing test" through vim.lsp.buf.code_action on the test under the cursor,
-- then wait for the run to finish and the fixed code to land in calc.py's buffer.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  local root = H.start("test_calc.py")
  H.cursor_below("def test_add") -- cursor on the body of test_add
  H.result.action_titles = H.apply_action(function(t)
    return t:find("Fix failing test", 1, true) ~= nil
  end)
  H.wait_run_finished(180000)
  H.wait_buffer_has("buffer_changed", 60000, root .. "/calc.py", "a + b")
  H.result.calc_buffer = H.buffer_lines(root .. "/calc.py")
  local wins = require("k2lsp.output").windows()
  H.mark("output_window", #wins > 0)
  if #wins > 0 then
    local closed, reasoning = {}, {}
    vim.api.nvim_win_call(wins[1], function()
      for i, l in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
        if vim.startswith(l, "┆ ") then
          table.insert(reasoning, i)
          if vim.fn.foldclosed(i) ~= -1 then
            table.insert(closed, i)
          end
        end
      end
    end)
    H.result.reasoning_lines = reasoning
    H.result.folded_reasoning_lines = closed
  end
  -- :K2Undo restores what the run delivered, through the editor
  vim.cmd("K2Undo")
  H.wait_buffer_has("undone", 60000, root .. "/calc.py", "a - b")
  H.result.calc_after_undo = H.buffer_lines(root .. "/calc.py")
  vim.cmd("checkhealth k2lsp")
  H.result.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
end)
