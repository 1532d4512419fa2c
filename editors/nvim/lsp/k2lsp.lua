-- Neovim 0.11+: `vim.lsp.enable('k2lsp')` finds this file on the runtimepath and starts k2lsp
-- with the same configuration as require('k2lsp').setup{} (streamed output, versioned edits,
-- every diagnostic under the cursor in code actions). Options: require('k2lsp').setup{...}
-- before vim.lsp.enable, or vim.lsp.config('k2lsp', {...}) to override single fields.
local k2 = require("k2lsp")
local key = require("k2lsp.key")

local base = k2.client_config(nil, true)

return {
  cmd = function(dispatchers)
    -- the api_key_cmd started by setup{} may still run: give it a moment (events keep flowing)
    key.wait(10000)
    local cmd = k2.resolve_cmd(vim.uv.cwd()) or { "k2lsp", "--stdio" }
    return vim.lsp.rpc.start(cmd, dispatchers, { env = key.env(k2.config.cmd_env, k2.config.api_key_env) })
  end,
  root_markers = k2.config.root_markers,
  filetypes = k2.config.filetypes,
  init_options = base.init_options,
  capabilities = base.capabilities,
  flags = base.flags,
  handlers = base.handlers,
  on_init = base.on_init,
}
