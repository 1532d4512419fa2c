-- The chat buffer: :K2Chat opens it next to calc.py; a message with #buffer (carrying the
-- unsaved text) is sent with <CR>, its answer appears with the reasoning folded; a follow-up
-- continues the same conversation and its edit lands in calc.py's buffer.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

local function type_and_send(text)
  local chat = require("k2lsp.chat")
  local buf = chat.buf()
  local sep
  for i, l in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if l == chat.SEP then sep = i end
  end
  vim.api.nvim_buf_set_lines(buf, sep, -1, false, { text })
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(buf), 0 })
  vim.api.nvim_feedkeys(vim.keycode("<CR>"), "mx", false) -- normal-mode <CR> in the chat
end

local function finished(n)
  return function()
    local count = 0
    for _, l in ipairs(require("k2lsp.chat").lines()) do
      if l:match("^── success") or l:match("^── %a+_") then count = count + 1 end
    end
    return count >= n
  end
end

H.run(function()
  H.capture_notify()
  local root = H.start("calc.py")
  local calc = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(calc, 0, 0, false, { "# UNSAVED note" }) -- not written to disk
  local ns = vim.api.nvim_create_namespace("otherlint") -- another source's diagnostic
  vim.diagnostic.set(ns, calc, { { lnum = 2, col = 4, message = "add subtracts", severity = 1, source = "otherlint" } })
  vim.cmd("K2Chat")
  local chat = require("k2lsp.chat")
  H.mark("chat_window", vim.api.nvim_get_current_buf() == chat.buf())
  type_and_send("/ask what does add do? #buffer #diagnostics #file:test_calc.py")
  H.wait("first_answer", 120000, finished(1))
  H.result.conversation_1 = chat.state.conversation
  type_and_send("now fix it #buffer")
  H.wait("second_answer", 120000, finished(2))
  H.result.conversation_2 = chat.state.conversation
  H.wait("calc_changed", 20000, function()
    return vim.api.nvim_buf_get_lines(calc, 2, 3, false)[1] == "    return a + b"
  end)
  H.result.calc = vim.api.nvim_buf_get_lines(calc, 0, -1, false)
  H.result.chat = chat.lines()
  -- reasoning lines are folded (closed) in the chat window
  local win = chat.windows()[1]
  local folded, reasoning = 0, 0
  vim.api.nvim_win_call(win, function()
    vim.cmd("silent! normal! zx")
    for i, l in ipairs(chat.lines()) do
      if vim.startswith(l, chat.REASONING) then
        reasoning = reasoning + 1
        if vim.fn.foldclosed(i) ~= -1 then folded = folded + 1 end
      end
    end
  end)
  H.result.reasoning_lines, H.result.reasoning_folded = reasoning, folded
  H.result.output_has_chat = false
  for _, l in ipairs(require("k2lsp.output").lines()) do
    if l:find("add subtracts", 1, true) then H.result.output_has_chat = true end
  end
end)
