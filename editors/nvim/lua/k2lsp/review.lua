-- Review per hunk: a run's proposal (`k2lsp/review`, sent when `settings.preview` is on) shown
-- in the real buffers with extmarks: the lines it removes highlighted, the lines it adds as
-- virtual lines below them, a "K2" sign. :K2Accept / :K2Reject decide the hunk under the cursor
-- (in a file or in the :K2Review list) and work from any window: the request goes to the
-- k2lsp client that sent the review, never to whichever client the current buffer has.
-- The server applies an accepted hunk at once with the usual checks (versioned edit, merged
-- over your typing, or a conflict when its lines changed); the rest is saved as a patch that
-- :K2ApplyPatch applies later.
local M = {}

M.ns = vim.api.nvim_create_namespace("k2lsp_review")
M.reviews = {} ---@type table<string, table>  runId -> review
M.order = {} ---@type string[]  run ids, oldest first
M.keymaps = { next = "]h", prev = "[h" }

local function notify(msg, level)
  vim.notify("k2lsp: " .. msg, level or vim.log.levels.INFO)
end

local function hl()
  vim.api.nvim_set_hl(0, "K2ReviewRemoved", { default = true, link = "DiffDelete" })
  vim.api.nvim_set_hl(0, "K2ReviewAdded", { default = true, link = "DiffAdd" })
  vim.api.nvim_set_hl(0, "K2ReviewSign", { default = true, link = "DiagnosticSignInfo" })
  vim.api.nvim_set_hl(0, "K2ReviewHint", { default = true, link = "Comment" })
end

--- Pending reviews, oldest first.
function M.pending()
  local out = {}
  for _, id in ipairs(M.order) do
    if M.reviews[id] then
      out[#out + 1] = M.reviews[id]
    end
  end
  return out
end

local function loaded_buf(uri)
  local buf = vim.uri_to_bufnr(uri)
  if not vim.api.nvim_buf_is_loaded(buf) then
    vim.fn.bufload(buf)
  end
  return buf
end

local function place(h)
  local buf, n_old = h.buf, #h.oldLines
  local count = vim.api.nvim_buf_line_count(buf)
  local row = math.min(h.start, count)
  local hint = string.format(" K2 #%d: :K2Accept / :K2Reject", h.id)
  local opts = {
    sign_text = "K2",
    sign_hl_group = "K2ReviewSign",
    virt_text = { { hint, "K2ReviewHint" } },
    right_gravity = false,
  }
  if n_old > 0 then
    opts.end_row, opts.end_col, opts.hl_group, opts.hl_eol = row + n_old, 0, "K2ReviewRemoved", true
    opts.end_right_gravity = true
  end
  local above = n_old == 0 and row < count
  local anchor = math.min(row, count - 1)
  h.mark = vim.api.nvim_buf_set_extmark(buf, M.ns, anchor, 0, opts)
  if #h.newLines > 0 then
    local lines = {}
    for _, l in ipairs(h.newLines) do
      lines[#lines + 1] = { { l, "K2ReviewAdded" } }
    end
    local at = n_old > 0 and (row + n_old - 1) or anchor
    h.lines_mark = vim.api.nvim_buf_set_extmark(buf, M.ns, math.min(at, count - 1), 0,
      { virt_lines = lines, virt_lines_above = above })
  end
end

local function unplace(h)
  if h.buf and vim.api.nvim_buf_is_valid(h.buf) then
    for _, id in ipairs({ h.mark, h.lines_mark }) do
      if id then
        pcall(vim.api.nvim_buf_del_extmark, h.buf, M.ns, id)
      end
    end
  end
  h.mark, h.lines_mark = nil, nil
end

--- The rows (0-based, end exclusive) a placed hunk covers now.
function M.rows(h)
  local pos = vim.api.nvim_buf_get_extmark_by_id(h.buf, M.ns, h.mark, { details = true })
  if #pos == 0 then
    return nil
  end
  local d = pos[3] or {}
  local last = (#h.oldLines > 0 and d.end_row) and d.end_row or pos[1] + 1
  return pos[1], math.max(last, pos[1] + 1)
end

local function hunks_in(buf)
  local out = {}
  for _, rev in ipairs(M.pending()) do
    for _, h in ipairs(rev.hunks) do
      if h.buf == buf and h.mark and h.state == "pending" then
        out[#out + 1] = h
      end
    end
  end
  table.sort(out, function(a, b) return (M.rows(a) or 0) < (M.rows(b) or 0) end)
  return out
end

--- Jump to the next (dir 1) or previous (dir -1) pending hunk of the current buffer.
function M.jump(dir)
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  local list = hunks_in(vim.api.nvim_get_current_buf())
  if dir < 0 then
    list = vim.fn.reverse(list)
  end
  for _, h in ipairs(list) do
    local s = M.rows(h)
    if s and ((dir > 0 and s > row) or (dir < 0 and s < row)) then
      vim.api.nvim_win_set_cursor(0, { s + 1, 0 })
      return h
    end
  end
  notify("no further K2 hunk in this buffer")
end

local function set_keys(buf, on)
  if not M.keymaps then
    return
  end
  for dir, lhs in pairs({ [1] = M.keymaps.next, [-1] = M.keymaps.prev }) do
    if lhs then
      if on then
        vim.keymap.set("n", lhs, function() M.jump(dir) end, { buffer = buf, desc = "k2lsp: K2 hunk" })
      else
        pcall(vim.keymap.del, "n", lhs, { buffer = buf })
      end
    end
  end
end

--- The pending hunk under the cursor of the current window (a file or the :K2Review list).
function M.at_cursor()
  local buf = vim.api.nvim_get_current_buf()
  local row = vim.api.nvim_win_get_cursor(0)[1] - 1
  local listed = vim.b[buf].k2lsp_review_lines
  if listed then
    local ref = listed[tostring(row)]
    local rev = ref and M.reviews[ref[1]]
    for _, h in ipairs(rev and rev.hunks or {}) do
      if h.id == ref[2] and h.state == "pending" then
        return rev, h
      end
    end
    return nil
  end
  for _, rev in ipairs(M.pending()) do
    for _, h in ipairs(rev.hunks) do
      if h.buf == buf and h.mark and h.state == "pending" then
        local s, e = M.rows(h)
        if s and row >= s and row < e then
          return rev, h
        end
      end
    end
  end
  return nil
end

local function refresh_list()
  require("k2lsp.review_list").refresh()
end

--- :K2Review: the pending hunks in a split below (your window stays as it is).
function M.open_list()
  return require("k2lsp.review_list").open()
end

--- Forget the review of `run_id`: its marks and keymaps go.
function M.clear(run_id)
  local rev = M.reviews[run_id]
  if not rev then
    return
  end
  M.reviews[run_id] = nil
  local bufs = {}
  for _, h in ipairs(rev.hunks) do
    unplace(h)
    if h.buf then
      bufs[h.buf] = true
    end
  end
  for buf in pairs(bufs) do
    if vim.api.nvim_buf_is_valid(buf) and #hunks_in(buf) == 0 then
      set_keys(buf, false)
    end
  end
  refresh_list()
end

--- `k2lsp/review` handler: show the proposal in the buffers; no window changes, no prompt.
function M.on_review(_, result, ctx)
  if type(result) ~= "table" or type(result.files) ~= "table" then
    return
  end
  hl()
  M.clear(result.runId)
  local rev = { id = result.runId, title = result.title or "", client_id = ctx.client_id, files = result.files, hunks = {} }
  local pending, elsewhere = 0, {}
  for _, f in ipairs(result.files) do
    f.fname = vim.uri_to_fname(f.uri)
    for _, h in ipairs(f.hunks or {}) do
      h.file, h.run = f, rev.id
      rev.hunks[#rev.hunks + 1] = h
      if h.state == "pending" then
        pending = pending + 1
        if f.kind == "modified" then
          h.buf = loaded_buf(f.uri)
          place(h)
          set_keys(h.buf, true)
        else
          elsewhere[#elsewhere + 1] = f.path .. " (" .. f.kind .. ")"
        end
      end
    end
  end
  M.reviews[rev.id] = rev
  M.order[#M.order + 1] = rev.id
  local files = {}
  for _, f in ipairs(result.files) do
    files[#files + 1] = f.path
  end
  local msg = string.format("run %s proposes %d change(s) in %s: :K2Accept / :K2Reject on a hunk (%s / %s to move), :K2Accept all, :K2Review to list them",
    rev.id, pending, table.concat(files, ", "), M.keymaps and M.keymaps.next or "]h", M.keymaps and M.keymaps.prev or "[h")
  if #elsewhere > 0 then
    msg = msg .. "; whole files: " .. table.concat(elsewhere, ", ")
  end
  notify(msg)
  refresh_list()
end

--- `k2lsp/delivery` hook: the final status of a run ends its review.
function M.on_delivery(params)
  if type(params) == "table" and params.status ~= "preview" and params.runId then
    M.clear(params.runId)
  end
end

local function request(rev, command, args, on_result, on_error)
  local client = vim.lsp.get_client_by_id(rev.client_id)
  if not client then
    notify("the k2lsp server of run " .. rev.id .. " is gone", vim.log.levels.ERROR)
    M.clear(rev.id)
    return
  end
  local params = { command = command, arguments = { args } }
  local function handler(err, result)
    if err then
      notify(command .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      on_error()
      return
    end
    if on_result then
      on_result(result)
    end
  end
  require("k2lsp").request(client, "workspace/executeCommand", params, handler)
end

local function settle(rev, answer)
  if type(answer) ~= "table" then
    return
  end
  local decided = {}
  for _, id in ipairs(answer.accepted or {}) do
    decided[id] = "accepted"
  end
  for _, id in ipairs(answer.rejected or {}) do
    decided[id] = "rejected"
  end
  local reasons = {}
  for _, c in ipairs(answer.conflicts or {}) do
    decided[c.id] = "conflict"
    reasons[#reasons + 1] = string.format("#%d: %s", c.id, c.reason or "?")
  end
  for _, h in ipairs(rev.hunks) do
    if decided[h.id] then
      h.state = decided[h.id]
      unplace(h)
    end
  end
  -- the last decision ends the review: the run's final message says it all then
  if #reasons > 0 and #(answer.pending or {}) > 0 then
    notify("not applied (your text changed there): " .. table.concat(reasons, "; "), vim.log.levels.WARN)
  end
  refresh_list()
end

--- Accept (true) or reject (false) `ids` of `rev` (nil: every pending hunk). The hunks leave
--- the buffer at once; they come back if the server refuses the request.
function M.decide(rev, ids, accept)
  local args = { runId = rev.id }
  if ids then
    args.hunks = ids
  end
  local wanted = {}
  for _, id in ipairs(ids or {}) do
    wanted[id] = true
  end
  local moving = {}
  for _, h in ipairs(rev.hunks) do
    if h.state == "pending" and (ids == nil or wanted[h.id]) then
      if h.mark then
        h.start = M.rows(h) or h.start
      end
      h.state = "deciding"
      unplace(h)
      moving[#moving + 1] = h
    end
  end
  refresh_list()
  request(rev, accept and "k2lsp.accept" or "k2lsp.reject", args, function(answer)
    settle(rev, answer)
  end, function()
    for _, h in ipairs(moving) do
      if h.state == "deciding" and M.reviews[rev.id] then
        h.state = "pending"
        if h.buf and vim.api.nvim_buf_is_valid(h.buf) then
          place(h)
        end
      end
    end
    refresh_list()
  end)
end

--- :K2Accept / :K2Reject [all | file | runId]: the hunk under the cursor, every hunk of its
--- file, or every pending hunk.
--- Returns false when there is no review at all (the caller falls back to a plain preview).
function M.command(arg, accept)
  local pending = M.pending()
  if #pending == 0 then
    if arg == "file" then -- not a run id for the plain preview either
      notify("no K2 review is waiting", vim.log.levels.WARN)
      return true
    end
    return false
  end
  local word = accept and "Accept" or "Reject"
  -- `file` before run ids: every pending hunk of the file under the cursor (a job review
  -- is decided file by file)
  if arg == "file" then
    local rev, h = M.at_cursor()
    if not rev then
      notify("no K2 hunk under the cursor", vim.log.levels.WARN)
      return true
    end
    local ids = {}
    for _, x in ipairs(h.file.hunks) do
      if x.state == "pending" then
        ids[#ids + 1] = x.id
      end
    end
    M.decide(rev, ids, accept)
    return true
  end
  if arg ~= "" and arg ~= "all" then -- a run id
    local rev = M.reviews[arg]
    if not rev then
      notify("no review is waiting for run " .. arg, vim.log.levels.ERROR)
      return true
    end
    M.decide(rev, nil, accept)
    return true
  end
  if arg == "all" then
    if #pending > 1 then
      notify("several runs wait for a review: :K2" .. word .. " <runId>", vim.log.levels.ERROR)
      return true
    end
    M.decide(pending[1], nil, accept)
    return true
  end
  local rev, h = M.at_cursor()
  if not rev then
    notify(string.format("no K2 hunk under the cursor: %s goes to the next one, :K2%s all decides every hunk, :K2Review lists them",
      M.keymaps and M.keymaps.next or "]h", word), vim.log.levels.WARN)
    return true
  end
  M.decide(rev, { h.id }, accept)
  return true
end

return M
