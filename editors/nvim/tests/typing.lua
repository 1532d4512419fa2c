-- The user types into calc.py while a run delivers its fix: $K2_TRIES runs, each with one edit
-- appended to a line chosen by a seeded generator, typed either at a random delay after the
-- time before the run's applyEdit is expected ("delay", aimed from the previous runs' timing) or just before the editor handles workspace/applyEdit
-- ("arrival": the keystroke is ahead of the edit in Neovim's queue). Records per try: the buffer
-- after delivery, the delivery status, when the edit was typed and when applyEdit arrived
-- (vim.uv.hrtime, ms). tests/test_editor_nvim.py and bench/nvim_typing.py judge them.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

local tries = tonumber(os.getenv("K2_TRIES") or "10")
local seed = tonumber(os.getenv("K2_SEED") or "14")
local targets = vim.json.decode(os.getenv("K2_TARGETS") or "[1, 5, 9]")
local max_delay = tonumber(os.getenv("K2_MAX_DELAY_MS") or "250")

local function now_ms()
  return vim.uv.hrtime() / 1e6
end

-- xorshift: the same choices on every machine and Neovim build
local state = seed
local function rand(n)
  state = bit.band(bit.bxor(state, bit.lshift(state, 13)), 0x7fffffff)
  state = bit.bxor(state, bit.rshift(state, 17))
  state = bit.band(bit.bxor(state, bit.lshift(state, 5)), 0x7fffffff)
  return state % n
end

local current = nil -- the try in progress
local function watched(real)
  return function(err, params, ctx)
    local t = current
    if t then
      if t.mode == "arrival" and not t.typed_ms then
        t.type_now()
      end
      t.apply_ms = t.apply_ms or {}
      table.insert(t.apply_ms, now_ms())
    end
    return real(err, params, ctx)
  end
end

if os.getenv("K2_STOCK") == "1" then
  -- for bench/nvim_typing.py --stock: Neovim's own applyEdit, capabilities and change batching
  local k2 = require("k2lsp")
  local config = k2.client_config
  k2.client_config = function(root)
    local cfg = config(root)
    if cfg then
      cfg.flags, cfg.capabilities = nil, nil
      cfg.handlers["workspace/applyEdit"] = nil
    end
    return cfg
  end
  vim.lsp.handlers["workspace/applyEdit"] = watched(vim.lsp.handlers["workspace/applyEdit"])
else
  local apply = require("k2lsp.apply")
  apply.handler = watched(apply.handler)
end

local status = require("k2lsp.status")

H.run(function()
  H.capture_notify()
  local path = H.start("calc.py") .. "/calc.py"
  local buf = vim.api.nvim_get_current_buf()
  local original = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local k2 = require("k2lsp")
  H.result.tries = {}
  local est = 600 -- ms from starting a run to its applyEdit; updated from every try
  for i = 1, tries do
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, original)
    local t = {
      index = i,
      line = targets[rand(#targets) + 1],
      mode = (rand(3) == 0) and "arrival" or "delay",
      delay_ms = rand(max_delay + 1),
      suffix = " # typed " .. i,
    }
    t.type_now = function()
      local text = vim.api.nvim_buf_get_lines(buf, t.line - 1, t.line, false)[1]
      vim.api.nvim_buf_set_text(buf, t.line - 1, #text, t.line - 1, #text, { t.suffix })
      t.typed_ms = now_ms()
    end
    current = t
    local run_id = nil
    k2.exec("k2lsp.task", { uri = vim.uri_from_bufnr(buf), task = "fix add (try " .. i .. ")" }, function(r)
      run_id = r and r.runId
    end)
    t.start_ms = now_ms()
    if t.mode == "delay" then
      -- aim at 0..max_delay ms before the edit arrives, from how long the last runs took
      t.delay_ms = math.max(0, est - t.delay_ms)
      vim.defer_fn(function()
        if not t.typed_ms then
          t.type_now()
        end
      end, t.delay_ms)
    end
    local ok = vim.wait(120000, function()
      local r = run_id and status.runs[run_id]
      return r ~= nil and r.outcome ~= nil and r.delivery ~= nil
    end, 5)
    if t.mode == "delay" and not t.typed_ms then
      vim.wait(max_delay + 50, function() return t.typed_ms ~= nil end, 5)
    end
    if t.apply_ms then
      est = t.apply_ms[1] - t.start_ms
    end
    local r = run_id and status.runs[run_id] or {}
    t.type_now = nil
    t.finished = ok
    t.run_id = run_id
    t.outcome = r.outcome
    t.delivery = r.delivery
    t.buffer = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
    table.insert(H.result.tries, t)
    current = nil
  end
  H.mark("done", true)
end)
