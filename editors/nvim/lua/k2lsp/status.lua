-- k2lsp run state fed by `k2lsp/stream` events, and the statusline string built from it.
local M = {}

---@class K2RunState
---@field id string
---@field mode string
---@field step integer
---@field max_steps integer
---@field phase string
---@field tokens integer
---@field cost number
---@field outcome string|nil
---@field delivery string|nil
---@field patch string|nil

M.runs = {} ---@type table<string, K2RunState>
M.order = {} ---@type string[]  run ids, oldest first

local function run(id)
  local r = M.runs[id]
  if not r then
    r = { id = id, mode = "", step = 0, max_steps = 0, phase = "", tokens = 0, cost = 0 }
    M.runs[id] = r
    M.order[#M.order + 1] = id
  end
  return r
end

--- Update the run state from one event.
function M.update(ev)
  local r = run(ev.run_id or "?")
  if ev.type == "run_started" then
    r.mode = ev.mode or ""
  elseif ev.type == "status" then
    r.step = ev.step or r.step
    r.max_steps = ev.max_steps or r.max_steps
    r.phase = ev.phase or r.phase
  elseif ev.type == "usage" then
    r.tokens = (ev.total_prompt_tokens or 0) + (ev.total_completion_tokens or 0)
    r.cost = ev.total_cost_usd or r.cost
  elseif ev.type == "tool_call" then
    r.phase = ev.name or r.phase
  elseif ev.type == "run_finished" then
    r.outcome = ev.outcome or "?"
    r.phase = "finished"
  end
  vim.cmd("redrawstatus")
end

--- Record how a run's changes were delivered (`k2lsp/delivery`).
function M.delivered(params)
  local r = run(params.runId or "?")
  r.delivery = params.status
  r.patch = params.patchPath or r.patch -- a saved patch (:K2ApplyPatch applies it later)
end

--- Runs that have not finished.
function M.active()
  local out = {}
  for _, id in ipairs(M.order) do
    if not M.runs[id].outcome then
      out[#out + 1] = M.runs[id]
    end
  end
  return out
end

--- The most recent run, or nil.
function M.last()
  local id = M.order[#M.order]
  return id and M.runs[id] or nil
end

local function tokens(n)
  if n >= 1000 then
    return string.format("%.1fk", n / 1000)
  end
  return tostring(n)
end

--- A short statusline string: running step, tokens, cost; empty when no run happened.
function M.statusline()
  local active = M.active()
  local r = active[#active] or M.last()
  if not r then
    return ""
  end
  local cost = string.format("$%.4f", r.cost)
  if not r.outcome then
    local step = r.max_steps > 0 and string.format("%d/%d", r.step, r.max_steps) or tostring(r.step)
    local extra = #active > 1 and string.format(" (+%d)", #active - 1) or ""
    return string.format("K2 ▶ step %s %s · %s tok · %s%s", step, r.phase, tokens(r.tokens), cost, extra)
  end
  local mark = r.outcome == "success" and "✓" or "✗"
  return string.format("K2 %s %s · %s tok · %s", mark, r.outcome, tokens(r.tokens), cost)
end

return M
