-- k2lsp output buffer: renders `k2lsp/stream` events (live reasoning, answers, one line per
-- tool call and result, a header per run) and folds each reasoning block once it ends.
local M = {}

local NAME = "k2lsp://output"
M.REASONING_PREFIX = "┆ "

---@class K2RunView
---@field kind string|nil  "reasoning" | "content" | nil: the open streaming block
---@field block_start integer|nil  first line (1-based) of the open reasoning block

M.state = {
  buf = nil, ---@type integer|nil
  runs = {}, ---@type table<string, K2RunView>
  last_run = nil, ---@type string|nil  the run that wrote the last line
  folds = {}, ---@type {[1]: integer, [2]: integer}[] finished reasoning blocks (1-based, inclusive)
  max_tool_text = 120,
}

local function valid(buf)
  return buf ~= nil and vim.api.nvim_buf_is_valid(buf)
end

--- The scratch buffer `name` (found, or created unlisted) with `filetype`; each
--- `{ group, pattern, link }` of `syntax` is matched in it and highlighted (linked by default).
---@param syntax {[1]: string, [2]: string, [3]: string}[]
---@return integer
function M.scratch(name, filetype, syntax)
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = filetype
  vim.api.nvim_buf_call(buf, function()
    for _, s in ipairs(syntax) do
      vim.cmd(string.format("syntax match %s /%s/", s[1], s[2]))
    end
  end)
  for _, s in ipairs(syntax) do
    vim.api.nvim_set_hl(0, s[1], { default = true, link = s[3] })
  end
  return buf
end

--- `st.buf` while it is valid; else a new M.scratch(name, filetype, syntax), given once to
--- `init(buf)` and kept in `st.buf`.
---@return integer
function M.kept_scratch(st, name, filetype, syntax, init)
  if valid(st.buf) then
    return st.buf
  end
  local buf = M.scratch(name, filetype, syntax)
  init(buf)
  st.buf = buf
  return buf
end

--- The output buffer, created on first use.
function M.buf()
  return M.kept_scratch(M.state, NAME, "k2output", {
    { "K2Reasoning", [[^┆ .*$]], "Comment" },
    { "K2Header", [[^━━ .*$]], "Title" },
    { "K2Tool", [[^[→←✎✓✗] .*$]], "Identifier" },
  }, function(buf)
    vim.bo[buf].modifiable = false
  end)
end

local function line_count()
  return vim.api.nvim_buf_line_count(M.buf())
end

local function is_empty()
  local buf = M.buf()
  return line_count() == 1 and vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] == ""
end

local function with_modifiable(fn)
  local buf = M.buf()
  vim.bo[buf].modifiable = true
  local ok, err = pcall(fn, buf)
  vim.bo[buf].modifiable = false
  if not ok then
    error(err)
  end
end

--- Append whole lines at the end of the buffer.
local function add_lines(lines)
  with_modifiable(function(buf)
    if is_empty() then
      vim.api.nvim_buf_set_lines(buf, 0, 1, false, lines)
    else
      vim.api.nvim_buf_set_lines(buf, -1, -1, false, lines)
    end
  end)
  M.follow()
end

--- Append streamed text to the last line; embedded newlines start new lines with `prefix`.
local function add_text(text, prefix)
  local parts = vim.split(text, "\n", { plain = true })
  with_modifiable(function(buf)
    local last = line_count()
    local cur = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ""
    local lines = { cur .. parts[1] }
    for i = 2, #parts do
      lines[#lines + 1] = prefix .. parts[i]
    end
    vim.api.nvim_buf_set_lines(buf, last - 1, last, false, lines)
  end)
  M.follow()
end

--- Windows currently showing the output buffer.
function M.windows()
  local wins = {}
  if not valid(M.state.buf) then
    return wins
  end
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(win) == M.state.buf then
      wins[#wins + 1] = win
    end
  end
  return wins
end

--- Keep windows that show the output scrolled to the end.
function M.follow()
  local last = line_count()
  for _, win in ipairs(M.windows()) do
    if vim.api.nvim_get_current_win() ~= win then
      pcall(vim.api.nvim_win_set_cursor, win, { last, 0 })
    end
  end
end

local function fold_in_window(win, s, e)
  vim.api.nvim_win_call(win, function()
    if vim.wo.foldmethod ~= "manual" then
      vim.wo.foldmethod = "manual"
    end
    vim.wo.foldenable = true
    vim.wo.foldminlines = 0 -- a one-line reasoning block folds too
    vim.wo.foldtext = "v:lua.require'k2lsp.output'.foldtext()"
    pcall(vim.cmd, string.format("silent! %d,%dfold", s, e))
  end)
end

--- Text shown for a closed reasoning fold.
function M.foldtext()
  local n = vim.v.foldend - vim.v.foldstart + 1
  return string.format("┆ ▸ reasoning (%d line%s)", n, n == 1 and "" or "s")
end

--- Recreate the folds of finished reasoning blocks in `win` (manual folds are per window).
function M.apply_folds(win)
  vim.api.nvim_win_call(win, function()
    pcall(vim.cmd, "silent! normal! zE")
  end)
  for _, f in ipairs(M.state.folds) do
    fold_in_window(win, f[1], f[2])
  end
end

--- Close the open streaming block of `view` (folding it when it was reasoning).
local function close_block(view)
  if view.kind == "reasoning" and view.block_start then
    local s, e = view.block_start, line_count()
    table.insert(M.state.folds, { s, e })
    for _, win in ipairs(M.windows()) do
      fold_in_window(win, s, e)
    end
  end
  view.kind, view.block_start = nil, nil
end

local function view_of(run_id)
  local view = M.state.runs[run_id]
  if not view then
    view = {}
    M.state.runs[run_id] = view
  end
  return view
end

local function short(value)
  local text = type(value) == "string" and value or vim.json.encode(value)
  text = text:gsub("\n", " ")
  if #text > M.state.max_tool_text then
    text = text:sub(1, M.state.max_tool_text) .. "…"
  end
  return text
end

local function stream_text(view, run_id, kind, text)
  local prefix = kind == "reasoning" and M.REASONING_PREFIX or ""
  if view.kind ~= kind or M.state.last_run ~= run_id then
    close_block(view)
    add_lines({ prefix })
    view.kind = kind
    view.block_start = line_count()
  end
  add_text(text, prefix)
end

local renderers = {
  run_started = function(ev)
    return { string.format("━━ K2 %s · %s · %s", ev.mode or "run", ev.run_id, short(ev.task or "")) }
  end,
  tool_call = function(ev)
    return { string.format("→ %s %s", ev.name or "?", short(ev.args or {})) }
  end,
  tool_result = function(ev)
    local mark = ev.ok and "ok" or "error"
    return { string.format("← %s %s: %s", ev.name or "?", mark, short(ev.summary or "")) }
  end,
  edit = function(ev)
    return { "✎ " .. (ev.path or "?") }
  end,
  test_result = function(ev)
    local mark = ((ev.failed or 0) + (ev.errors or 0)) == 0 and "✓" or "✗"
    return {
      string.format("%s tests: %d passed, %d failed, %d errors", mark, ev.passed or 0, ev.failed or 0, ev.errors or 0),
    }
  end,
  run_finished = function(ev)
    local lines = { string.format("━━ finished: %s (exit %s)", ev.outcome or "?", tostring(ev.exit_code)) }
    if ev.summary and ev.summary ~= "" then
      for _, l in ipairs(vim.split(ev.summary, "\n", { plain = true })) do
        lines[#lines + 1] = "   " .. l
      end
    end
    return lines
  end,
}

--- Render one event (a flat `Event.to_dict()` object).
function M.render(ev)
  local run_id = ev.run_id or "?"
  local view = view_of(run_id)
  if ev.type == "reasoning" or ev.type == "content" then
    stream_text(view, run_id, ev.type, ev.text or "")
    M.state.last_run = run_id
    return
  end
  local r = renderers[ev.type]
  if not r then
    return -- usage / status feed the statusline only
  end
  close_block(view)
  add_lines(r(ev))
  M.state.last_run = run_id
end

--- Open (or focus) a split showing the output; `enter` false keeps the cursor where it is.
function M.open(enter)
  local buf = M.buf()
  local wins = M.windows()
  if #wins > 0 then
    if enter then
      vim.api.nvim_set_current_win(wins[1])
    end
    return wins[1]
  end
  local cur = vim.api.nvim_get_current_win()
  vim.cmd("botright 12split")
  local win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  vim.wo[win].wrap = true
  vim.wo[win].number = false
  M.apply_folds(win)
  pcall(vim.api.nvim_win_set_cursor, win, { line_count(), 0 })
  if not enter then
    vim.api.nvim_set_current_win(cur)
  end
  return win
end

--- Close every window showing the output.
function M.close()
  for _, win in ipairs(M.windows()) do
    pcall(vim.api.nvim_win_close, win, true)
  end
end

--- Toggle the output split.
function M.toggle()
  if #M.windows() > 0 then
    M.close()
  else
    M.open(false)
  end
end

--- The whole output as a list of lines (for tests and :K2Output).
function M.lines()
  return vim.api.nvim_buf_get_lines(M.buf(), 0, -1, false)
end

return M
