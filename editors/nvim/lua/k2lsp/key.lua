-- api_key_cmd: run once per Neovim session, asynchronously (vim.system), never an unhandled
-- error. A program that is missing or fails is reported once with vim.notify; the server then
-- starts without the key (its first run says which variable to set; :checkhealth k2lsp too).
local M = {}

M.state = "none" -- none | running | done | failed
M.problem = nil -- why the key could not be read (never the key)
local value = nil
local waiting = {}

local function notify(msg, level)
  vim.notify("k2lsp: " .. msg, level or vim.log.levels.INFO)
end

local function first_line(text)
  return vim.trim((text or ""):match("[^\n]*") or "")
end

local function settle(state, key, problem)
  M.state, value, M.problem = state, key, problem
  if problem then
    notify(problem .. "; starting the server without a key", vim.log.levels.ERROR)
  end
  local queued = waiting
  waiting = {}
  for _, fn in ipairs(queued) do
    pcall(fn)
  end
end

--- The argv of `cmd` (a list, or a string run by the shell).
local function argv(cmd)
  if type(cmd) == "string" then
    return { vim.o.shell, vim.o.shellcmdflag, cmd }
  end
  return cmd
end

--- Start `cmd` once; a second call (setup{} again) keeps the first result.
function M.start(cmd)
  if not cmd or M.state ~= "none" then
    return
  end
  if type(cmd) ~= "table" and type(cmd) ~= "string" then
    settle("failed", nil, "api_key_cmd must be a list like { 'pass', 'show', 'moonshot' }")
    return
  end
  M.state = "running"
  local name = tostring(argv(cmd)[1])
  local ok, err = pcall(vim.system, argv(cmd), { text = true }, function(res)
    vim.schedule(function()
      local key = vim.trim(res.stdout or "")
      if res.code ~= 0 then
        local why = first_line(res.stderr)
        settle("failed", nil, string.format("api_key_cmd (%s) failed with exit %d%s", name, res.code,
          why ~= "" and (": " .. why) or ""))
      elseif key == "" then
        settle("failed", nil, "api_key_cmd (" .. name .. ") printed nothing")
      else
        settle("done", key, nil)
      end
    end)
  end)
  if not ok then -- the program is missing or not executable: vim.system raised
    vim.schedule(function()
      local why = first_line(tostring(err)):gsub("^.-:%d+: ", "") -- drop the Lua file:line
      settle("failed", nil, "api_key_cmd could not run " .. name .. ": " .. why)
    end)
  end
end

--- Call `fn` once the key is known (now, unless api_key_cmd is still running).
function M.when_ready(fn)
  if M.state == "running" then
    table.insert(waiting, fn)
  else
    fn()
  end
end

--- Wait (processing events) up to `ms` for the key; used where a start cannot be deferred.
function M.wait(ms)
  if M.state == "running" then
    vim.wait(ms, function() return M.state ~= "running" end, 20)
  end
end

--- `base` plus the key in `env_name` when api_key_cmd produced one.
function M.env(base, env_name)
  local env = vim.deepcopy(base or {})
  if value then
    env[env_name] = value
  end
  return env
end

--- For tests: forget the result.
function M.reset()
  M.state, M.problem, value, waiting = "none", nil, nil, {}
end

return M
