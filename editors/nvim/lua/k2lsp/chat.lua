-- k2lsp chat buffer (:K2Chat): a conversation with K2 in a split, like codecompanion.nvim's chat.
--
-- The buffer holds the transcript (your messages, K2's answers, tool calls, diffs, cost; the
-- reasoning and the diffs folded) above an input area that starts after the line `M.SEP`.
-- Type a message there and press <CR> in normal mode to send it: the first message starts a
-- conversation (k2lsp.task, or k2lsp.ask when the message starts with /ask), every later one
-- continues it with its conversationId, so K2 sees the earlier history and keeps working in the
-- same run copy. Context tags in the message become structured context items:
--   #buffer        the buffer you came from (its unsaved text and LSP version)
--   #selection     the last visual selection in that buffer
--   #file:<path>   a file of the workspace
--   #diagnostics   the diagnostics of that buffer (from every source)
-- :K2ChatNew starts a new conversation in the same buffer.
local M = {}

local NAME = "k2lsp://chat"
M.SEP = "── message · <CR> sends · #buffer #selection #file:path #diagnostics · /ask ──"
M.REASONING = "┆ "
M.DIFF = "│ "

M.state = {
  buf = nil, ---@type integer|nil
  source = nil, ---@type integer|nil  the buffer #buffer/#diagnostics refer to
  conversation = nil, ---@type string|nil
  runs = {}, ---@type table<string, {kind: string|nil, cost: number, tokens: integer}>
  early = {}, ---@type table<string, table[]>  events of runs whose id is not known yet
  waiting = false, -- a message was sent and its run id is not known yet
  fallback = nil, ---@type fun(ev: table)|nil  renders events that are not the chat's
  pending = 0, -- runs of the chat still going
  last_answer = "",
}

local function k2()
  return require("k2lsp")
end

local function notify(msg, level)
  vim.notify("k2lsp chat: " .. msg, level or vim.log.levels.INFO)
end

local function valid(buf)
  return buf ~= nil and vim.api.nvim_buf_is_valid(buf)
end

--- Fold expression: reasoning and diff lines fold (closed by default).
function M.foldexpr(lnum)
  local line = vim.fn.getline(lnum)
  if vim.startswith(line, M.REASONING) or vim.startswith(line, M.DIFF) then
    return 1
  end
  return 0
end

--- Text of a closed fold.
function M.foldtext()
  local first = vim.fn.getline(vim.v.foldstart)
  local n = vim.v.foldend - vim.v.foldstart + 1
  local what = vim.startswith(first, M.DIFF) and "diff" or "reasoning"
  return string.format("%s▸ %s (%d line%s)", vim.startswith(first, M.DIFF) and M.DIFF or M.REASONING,
    what, n, n == 1 and "" or "s")
end

--- The chat buffer, created on first use.
function M.buf()
  return require("k2lsp.output").kept_scratch(M.state, NAME, "k2chat", {
    { "K2Reasoning", [[^┆ .*$]], "Comment" },
    { "K2ChatRole", [[^## .*$]], "Title" },
    { "K2Tool", [[^[→←✎✓✗] .*$]], "Identifier" },
    { "K2ChatSep", [[^── message .*$]], "NonText" },
  }, function(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { M.SEP, "" })
    vim.keymap.set("n", "<CR>", M.send, { buffer = buf, desc = "k2lsp: send the chat message" })
  end)
end

--- The line (0-based) of the input separator (the last one in the buffer).
local function sep_row()
  local lines = vim.api.nvim_buf_get_lines(M.buf(), 0, -1, false)
  for i = #lines, 1, -1 do
    if lines[i] == M.SEP then
      return i - 1
    end
  end
  vim.api.nvim_buf_set_lines(M.buf(), -1, -1, false, { M.SEP, "" })
  return vim.api.nvim_buf_line_count(M.buf()) - 2
end

--- Windows showing the chat.
function M.windows()
  local wins = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if valid(M.state.buf) and vim.api.nvim_win_get_buf(win) == M.state.buf then
      wins[#wins + 1] = win
    end
  end
  return wins
end

--- Append transcript lines just above the input area.
local function add_lines(lines)
  local row = sep_row()
  vim.api.nvim_buf_set_lines(M.buf(), row, row, false, lines)
end

--- Append streamed text to the last transcript line; newlines start lines with `prefix`.
local function add_text(text, prefix)
  local row = sep_row()
  local buf = M.buf()
  local parts = vim.split(text, "\n", { plain = true })
  local cur = row > 0 and vim.api.nvim_buf_get_lines(buf, row - 1, row, false)[1] or ""
  local lines = { cur .. parts[1] }
  for i = 2, #parts do
    lines[#lines + 1] = prefix .. parts[i]
  end
  vim.api.nvim_buf_set_lines(buf, math.max(row - 1, 0), row, false, lines)
end

local function short(value, n)
  local text = type(value) == "string" and value or vim.json.encode(value)
  text = text:gsub("\n", " ")
  n = n or 120
  return #text > n and (text:sub(1, n) .. "…") or text
end

local function view_of(run_id)
  local view = M.state.runs[run_id]
  if not view then
    view = { kind = nil, cost = 0, tokens = 0 }
    M.state.runs[run_id] = view
  end
  return view
end

local function stream(view, kind, text)
  local prefix = kind == "reasoning" and M.REASONING or ""
  if view.kind ~= kind then
    add_lines({ prefix })
    view.kind = kind
  end
  add_text(text, prefix)
  if kind == "content" then
    M.state.last_answer = M.state.last_answer .. text
  end
end

local render = {
  run_started = function(ev)
    return { "", string.format("## K2 · %s · %s", ev.mode or "run", ev.run_id or "?") }
  end,
  tool_call = function(ev) return { string.format("→ %s %s", ev.name or "?", short(ev.args or {})) } end,
  tool_result = function(ev)
    return { string.format("← %s %s: %s", ev.name or "?", ev.ok and "ok" or "error", short(ev.summary or "")) }
  end,
  edit = function(ev)
    local lines = { "✎ " .. (ev.path or "?") }
    for _, l in ipairs(vim.split(ev.diff or "", "\n", { plain = true, trimempty = true })) do
      lines[#lines + 1] = M.DIFF .. l
    end
    return lines
  end,
  test_result = function(ev)
    local bad = (ev.failed or 0) + (ev.errors or 0)
    return { string.format("%s tests: %d passed, %d failed, %d errors", bad == 0 and "✓" or "✗",
      ev.passed or 0, ev.failed or 0, ev.errors or 0) }
  end,
}

--- Render one event of a chat run.
function M.render(ev)
  local view = view_of(ev.run_id or "?")
  if ev.type == "reasoning" or ev.type == "content" then
    stream(view, ev.type, ev.text or "")
  elseif ev.type == "usage" then
    view.cost = tonumber(ev.total_cost_usd) or view.cost
    view.tokens = (tonumber(ev.total_prompt_tokens) or 0) + (tonumber(ev.total_completion_tokens) or 0)
  elseif ev.type == "run_finished" then
    view.kind = nil
    local lines = { string.format("── %s · %d tokens · $%.4f", ev.outcome or "?", view.tokens, view.cost) }
    if ev.outcome ~= "success" and ev.summary and ev.summary ~= "" then
      lines[#lines + 1] = short(ev.summary, 400)
    end
    add_lines(lines)
    M.state.pending = math.max(0, M.state.pending - 1)
  elseif render[ev.type] then
    view.kind = nil
    add_lines(render[ev.type](ev))
  end
  for _, win in ipairs(M.windows()) do
    pcall(vim.api.nvim_win_call, win, function() vim.cmd("silent! normal! zx") end)
  end
end

--- Called by init.lua for every `k2lsp/stream` event; true when the chat took it (rendered
--- it, or holds it until the run it sent says its id; `fallback` renders it elsewhere if not).
function M.on_event(ev, fallback)
  local id = ev.run_id or "?"
  M.state.fallback = fallback or M.state.fallback
  if M.state.runs[id] then
    local ok, err = pcall(M.render, ev)
    if not ok then
      notify("could not render event: " .. tostring(err), vim.log.levels.WARN)
    end
    return true
  end
  if M.state.waiting then -- a run's first events may come before its id: keep them a moment
    M.state.early[id] = M.state.early[id] or {}
    table.insert(M.state.early[id], ev)
    return true
  end
  return false
end

--- The sent message's run is `run_id` (nil: it did not start): render what was held for it,
--- hand every other held event back.
local function adopt(run_id)
  M.state.waiting = false
  if run_id then
    view_of(run_id)
  end
  local early = M.state.early
  M.state.early = {}
  for id, events in pairs(early) do
    for _, ev in ipairs(events) do
      if id == run_id then
        pcall(M.render, ev)
      elseif M.state.fallback then
        pcall(M.state.fallback, ev)
      end
    end
  end
end

-- ---- context tags -------------------------------------------------------------------------
local SEVERITY = { "error", "warning", "info", "hint" }

local function source_buf()
  local b = M.state.source
  if valid(b) and vim.api.nvim_buf_get_name(b) ~= "" then
    return b
  end
  return nil
end

--- Structured context items for the tags in `text`, and the text without them.
function M.parse(text)
  local items, problems = {}, {}
  local src = source_buf()
  local function need_src(tag)
    if not src then
      problems[#problems + 1] = tag .. " needs a file buffer: open :K2Chat from one"
    end
    return src
  end
  local clean = text:gsub("#file:(%S+)", function(path)
    items[#items + 1] = { kind = "file", path = vim.fn.fnamemodify(path, ":p") }
    return "`" .. path .. "`"
  end)
  clean = clean:gsub("#(%a+)", function(tag)
    if tag == "buffer" and need_src("#buffer") then
      local lines = vim.api.nvim_buf_get_lines(src, 0, -1, false)
      items[#items + 1] = {
        kind = "buffer",
        uri = vim.uri_from_bufnr(src),
        text = table.concat(lines, "\n") .. "\n",
        version = vim.lsp.util.buf_versions[src],
      }
      return "(the current buffer)"
    elseif tag == "selection" and need_src("#selection") then
      local s, e = vim.api.nvim_buf_get_mark(src, "<")[1], vim.api.nvim_buf_get_mark(src, ">")[1]
      if s == 0 or e == 0 then
        problems[#problems + 1] = "#selection: no visual selection in that buffer yet"
      else
        items[#items + 1] = { kind = "selection", uri = vim.uri_from_bufnr(src), startLine = s, endLine = e }
      end
      return "(the selection)"
    elseif tag == "diagnostics" and need_src("#diagnostics") then
      local diags = {}
      for _, d in ipairs(vim.diagnostic.get(src)) do
        diags[#diags + 1] = {
          line = d.lnum + 1,
          message = d.message,
          severity = SEVERITY[d.severity] or "error",
          source = d.source,
          code = d.code ~= nil and tostring(d.code) or nil,
        }
      end
      items[#items + 1] = { kind = "diagnostics", uri = vim.uri_from_bufnr(src), items = diags }
      return "(the diagnostics)"
    end
    return "#" .. tag
  end)
  return vim.trim(clean), items, problems
end

-- ---- sending ------------------------------------------------------------------------------
--- The message typed in the input area.
function M.input()
  local row = sep_row()
  local lines = vim.api.nvim_buf_get_lines(M.buf(), row + 1, -1, false)
  return vim.trim(table.concat(lines, "\n"))
end

--- Send the input area as a message (the first starts the conversation, later ones continue it).
function M.send()
  local raw = M.input()
  if raw == "" then
    notify("type a message below the line first", vim.log.levels.WARN)
    return
  end
  local ask = vim.startswith(raw, "/ask ")
  local text, items, problems = M.parse(ask and raw:sub(6) or raw)
  if #problems > 0 then
    notify(table.concat(problems, "; "), vim.log.levels.ERROR)
    return
  end
  if not k2().client() then
    notify("no k2lsp server is running (open a file of the project first)", vim.log.levels.ERROR)
    return
  end
  local command = ask and "k2lsp.ask" or "k2lsp.task"
  local args = { context = #items > 0 and items or nil, conversationId = M.state.conversation }
  args[ask and "question" or "task"] = text
  local row = sep_row()
  vim.api.nvim_buf_set_lines(M.buf(), row + 1, -1, false, { "" })
  local you = { "", "## You" }
  vim.list_extend(you, vim.split(raw, "\n", { plain = true }))
  add_lines(you)
  M.state.pending = M.state.pending + 1
  M.state.waiting = true
  M.state.last_answer = ""
  k2().exec(command, args, function(result)
    if type(result) ~= "table" or not result.runId then
      M.state.pending = math.max(0, M.state.pending - 1)
      adopt(nil)
      return
    end
    M.state.conversation = result.conversationId or M.state.conversation
    adopt(result.runId)
  end, function(err)
    M.state.pending = math.max(0, M.state.pending - 1)
    adopt(nil)
    add_lines({ "── not sent: " .. short((err and err.message) or "error", 400) })
  end)
end

--- Open the chat in a right split (`source`: the buffer #buffer refers to).
function M.open(source)
  if source and vim.bo[source].buftype == "" then
    M.state.source = source
  end
  local buf = M.buf()
  local wins = M.windows()
  if #wins > 0 then
    vim.api.nvim_set_current_win(wins[1])
  else
    vim.cmd("botright vsplit")
    vim.api.nvim_win_set_buf(0, buf)
    vim.wo.wrap = true
    vim.wo.number = false
    vim.wo.foldmethod = "expr"
    vim.wo.foldexpr = "v:lua.require'k2lsp.chat'.foldexpr(v:lnum)"
    vim.wo.foldtext = "v:lua.require'k2lsp.chat'.foldtext()"
    vim.wo.foldlevel = 0
    vim.wo.foldminlines = 0 -- a one-line reasoning block folds too
    vim.wo.foldenable = true
  end
  pcall(vim.api.nvim_win_set_cursor, 0, { vim.api.nvim_buf_line_count(buf), 0 })
end

--- Forget the conversation; the next message starts a new one.
function M.new()
  M.state.conversation = nil
  add_lines({ "", "── new conversation ──" })
end

--- The transcript as lines (for tests).
function M.lines()
  return vim.api.nvim_buf_get_lines(M.buf(), 0, -1, false)
end

return M
