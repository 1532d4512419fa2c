-- Workspace trust: a repository whose k2lsp.toml sets ignored keys makes the plugin ask once
-- (vim.ui.select, answered "Trust" here); the answer reaches the server as k2lsp.trust.
package.path = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":h") .. "/?.lua;" .. package.path
local H = require("harness")

H.run(function()
  H.capture_notify()
  H.result.prompts = {}
  vim.ui.select = function(items, opts, on_choice)
    table.insert(H.result.prompts, opts.prompt)
    -- trust the real notice; decline the made-up one below (remembered, never asked again)
    local pick = #H.result.prompts == 1 and 1 or 2
    on_choice(items[pick], pick)
  end
  H.setup()
  H.open(assert(os.getenv("K2_ROOT")) .. "/calc.py")
  local store = assert(os.getenv("XDG_CONFIG_HOME")) .. "/k2lsp/trusted.json"
  H.wait("trusted", 30000, function() return vim.fn.filereadable(store) == 1 end)
  -- a second notice for the same configuration does not ask again
  local handler = require("k2lsp").client().handlers["k2lsp/untrusted"]
    or require("k2lsp").client().config.handlers["k2lsp/untrusted"]
  handler(nil, { root = os.getenv("K2_ROOT"), keys = { "sandbox" }, configHash = "again" }, {})
  handler(nil, { root = os.getenv("K2_ROOT"), keys = { "sandbox" }, configHash = "again" }, {})
  vim.wait(500, function() return false end)
  require("k2lsp").trust_asked = {} -- a new session: the declined configuration stays declined
  handler(nil, { root = os.getenv("K2_ROOT"), keys = { "sandbox" }, configHash = "again" }, {})
  vim.wait(300, function() return false end)
  H.result.store = vim.fn.filereadable(store) == 1 and vim.fn.readfile(store) or {}
end)
