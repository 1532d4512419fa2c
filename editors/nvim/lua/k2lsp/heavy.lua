-- Heavy runs' candidates (docs/heavy.md): remembers what `candidate_finished` and
-- `heavy_selected` events say about each candidate of a run; `:K2Candidates [runId]` lists
-- them (vim.ui.select) with their test evidence, diff size, cost and why each was chosen or
-- left out, previews one's diff in a scratch split (never attached to a language server) and
-- takes it instead of the winner (k2lsp.undo of the winner first, then k2lsp.takeCandidate).
local M = {}

---@type table<string, table> run id -> { order, by_label, winner, explanation, excluded, selected }
M.runs = {}
M.latest = nil -- the run id of the last heavy run seen

local function notify(msg, level)
  vim.notify("k2lsp: " .. msg, level or vim.log.levels.INFO)
end

local function run_entry(id)
  local r = M.runs[id]
  if not r then
    r = { order = {}, by_label = {}, excluded = {} }
    M.runs[id] = r
  end
  return r
end

local function remember(r, rec)
  local label = rec.candidate
  if type(label) ~= "string" then
    return
  end
  if not r.by_label[label] then
    r.order[#r.order + 1] = label
    r.by_label[label] = {}
  end
  r.by_label[label] = vim.tbl_extend("force", r.by_label[label], rec)
end

--- Record one stream event (only heavy-run events matter here).
function M.on_event(ev)
  if type(ev) ~= "table" or type(ev.run_id) ~= "string" then
    return
  end
  if ev.type == "heavy_started" then
    M.runs[ev.run_id] = nil
    run_entry(ev.run_id)
    M.latest = ev.run_id
  elseif ev.type == "candidate_finished" then
    remember(run_entry(ev.run_id), ev)
    M.latest = ev.run_id
  elseif ev.type == "heavy_selected" then
    local r = run_entry(ev.run_id)
    for _, rec in ipairs(type(ev.candidates) == "table" and ev.candidates or {}) do
      if type(rec) == "table" then
        remember(r, rec)
      end
    end
    r.winner = type(ev.winner) == "string" and ev.winner or nil
    r.explanation = type(ev.explanation) == "string" and ev.explanation or ""
    r.excluded = type(ev.excluded) == "table" and ev.excluded or {}
    r.selected = true
    M.latest = ev.run_id
  end
end

local function ids(list)
  return table.concat(vim.tbl_map(tostring, list or {}), ", ")
end

--- One line of test evidence for candidate record `c`.
function M.evidence_text(c)
  local e = type(c.evidence) == "table" and c.evidence or nil
  if not e then
    return "no evidence (" .. tostring(c.outcome or "?") .. ")"
  end
  local parts = {}
  local targets = e.targets or {}
  if #targets == 0 then
    parts[#parts + 1] = "no failing test before"
  elseif e.targets_green then
    parts[#parts + 1] = string.format("red→green %d/%d", #targets, #targets)
  else
    parts[#parts + 1] = string.format("still red %d/%d: %s", #(e.still_red or {}), #targets, ids(e.still_red))
  end
  if not e.suite_ran then
    parts[#parts + 1] = "suite did not run" .. ((e.suite or "") ~= "" and (": " .. e.suite) or "")
  else
    parts[#parts + 1] = (e.suite_ok and "suite pass" or "suite FAIL") .. ((e.suite or "") ~= "" and (" (" .. e.suite .. ")") or "")
  end
  if #(e.touched_tests or {}) > 0 then
    parts[#parts + 1] = "touched tests: " .. ids(e.touched_tests)
  end
  parts[#parts + 1] = string.format("%d diff lines in %s", e.diff_lines or 0, #(e.files or {}) > 0 and ids(e.files) or "no file")
  return table.concat(parts, "; ")
end

--- Why candidate `label` of run `r` was chosen or left out.
function M.why(r, label)
  if not r.selected then
    return "not decided yet"
  end
  if r.winner == label then
    return "chosen: " .. (r.explanation or "")
  end
  if r.excluded[label] then
    return "rejected: " .. tostring(r.excluded[label])
  end
  return "not chosen" .. (r.winner and (" (" .. r.winner .. " won)") or "")
end

--- The candidates of run `id` as items: { run, label, record, winner, text, detail }.
function M.items(id)
  local r = M.runs[id]
  if not r then
    return {}
  end
  local out = {}
  for _, label in ipairs(r.order) do
    local c = r.by_label[label]
    local head = string.format("%s%s [%s] $%.4f", label, r.winner == label and " ★ winner" or "",
      tostring(c.outcome or "?"), tonumber(c.cost_usd) or 0)
    out[#out + 1] = {
      run = id,
      label = label,
      record = c,
      winner = r.winner == label,
      text = head .. " — " .. M.evidence_text(c) .. " — " .. M.why(r, label),
    }
  end
  return out
end

--- Show candidate `item`'s diff (with its evidence as a header) in a scratch split.
function M.preview(item)
  local name = string.format("k2lsp://candidate/%s/%s", item.run, item.label)
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true) -- buftype=nofile: the plugin never attaches it
    vim.api.nvim_buf_set_name(buf, name)
    vim.bo[buf].bufhidden = "wipe"
  end
  local diff = type(item.record.diff) == "string" and item.record.diff or ""
  local lines = {
    "# K2 heavy run " .. item.run .. ", candidate " .. item.label .. (item.winner and " (the winner)" or ""),
    "# " .. M.evidence_text(item.record),
    "# " .. M.why(M.runs[item.run] or { excluded = {} }, item.label):gsub("\n", " "),
    "# " .. tostring(item.record.summary or ""):gsub("\n", " "),
  }
  if diff == "" then
    lines[#lines + 1] = "# (no diff: this candidate changed nothing, or its diff has not arrived yet)"
  else
    vim.list_extend(lines, vim.split(diff, "\n", { plain = true }))
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = "diff"
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd("botright sbuffer " .. buf)
  end
  return buf
end

local function request(command, args, cb)
  local client = require("k2lsp").client()
  if not client then
    notify("no k2lsp server is running (open a file of the project first)", vim.log.levels.ERROR)
    return
  end
  local params = { command = command, arguments = { args } }
  local handler = function(err, result) cb(err, result) end
  require("k2lsp").request(client, "workspace/executeCommand", params, handler)
end

--- Take candidate `label` of run `id` instead of its winner; `done(result|nil)` after.
function M.take(id, label, done)
  done = done or function() end
  local args = { runId = id, candidate = label }
  local function finish(err, result)
    if err then
      notify("taking " .. label .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return done(nil)
    end
    M.runs[id] = nil -- the server keeps no other candidate of this run
    notify(string.format("took %s of run %s (%s)", label, id, tostring(result and result.delivery)))
    done(result)
  end
  request("k2lsp.takeCandidate", args, function(err, result)
    if err and tostring(err.message or ""):find("undo it first", 1, true) then
      -- the winner is in the buffers: undo it (through the editor), then take
      request("k2lsp.undo", { runId = id }, function(uerr)
        if uerr then
          return finish(uerr)
        end
        request("k2lsp.takeCandidate", args, finish)
      end)
      return
    end
    finish(err, result)
  end)
end

--- :K2Candidates [runId]: pick a candidate, preview its diff, then take it or keep the winner.
function M.pick(id)
  id = (id ~= nil and id ~= "") and id or M.latest
  local items = id and M.items(id) or {}
  if #items == 0 then
    notify("no heavy run's candidates to show" .. (id and (" for run " .. id) or ""), vim.log.levels.WARN)
    return
  end
  vim.ui.select(items, {
    prompt = "K2 heavy run " .. id .. ": candidates",
    format_item = function(it) return it.text end,
  }, function(item)
    if not item then
      return
    end
    M.preview(item)
    if item.winner or (item.record.diff or "") == "" then
      return -- the winner is what was delivered; a candidate without changes cannot be taken
    end
    local choices = { "Take " .. item.label .. " instead of the winner", "Keep the current change" }
    vim.ui.select(choices, { prompt = "K2: take " .. item.label .. "?" }, function(choice)
      if choice == choices[1] then
        M.take(id, item.label)
      end
    end)
  end)
end

return M
