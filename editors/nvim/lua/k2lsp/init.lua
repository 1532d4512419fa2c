-- k2lsp for Neovim (>= 0.10): starts the k2lsp language server, renders its `k2lsp/stream`
-- events in an output split, and adds :K2* commands, a statusline function and :checkhealth.
local apply = require("k2lsp.apply")
local chat = require("k2lsp.chat")
local diagnostics = require("k2lsp.diagnostics")
local key = require("k2lsp.key")
local output = require("k2lsp.output")
local review = require("k2lsp.review")
local status = require("k2lsp.status")

local M = {}

M.defaults = {
  cmd = nil, -- e.g. { "/path/to/k2lsp", "--stdio" }; default: k2lsp on PATH
  -- true: prefer <root>/.venv/bin/k2lsp. That runs a program the repository ships, so it is
  -- off by default: a cloned repository must not choose what Neovim executes.
  project_venv = false,
  -- ask (vim.ui.select) once per repository configuration whether to trust a repository whose
  -- k2lsp.toml / [tool.k2lsp] sets keys k2lsp ignores until you trust it (k2lsp.trust)
  ask_trust = true,
  filetypes = nil, -- nil: attach to every file buffer
  root_markers = { ".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml", "k2lsp.toml" },
  -- k2lsp options sent as initializationOptions.k2lsp (Settings names, camelCase or snake_case):
  -- provider, baseUrl, model, maxSteps, maxTokens, budgetUsd, timeoutS, sandbox, preview...
  settings = {},
  api_key_cmd = nil, -- a command (list) printing the API key; handed to the server in api_key_env
  api_key_env = "K2LSP_API_KEY",
  cmd_env = {},
  open_output = true, -- open the output split when a run starts
  -- keys (buffer-local, in buffers with a K2 hunk under review) to move between hunks; false: none
  review_keymaps = { next = "]h", prev = "[h" },
}

M.config = vim.deepcopy(M.defaults)
M.statusline = status.statusline

local NAME = "k2lsp"
local has_011 = vim.fn.has("nvim-0.11") == 1

local function notify(msg, level)
  vim.notify("k2lsp: " .. msg, level or vim.log.levels.INFO)
end

--- The command that starts the server for `root`.
function M.resolve_cmd(root)
  if M.config.cmd then
    return M.config.cmd
  end
  local venv = root and (root .. "/.venv/bin/k2lsp")
  if M.config.project_venv and venv and vim.fn.executable(venv) == 1 then
    return { venv, "--stdio" }
  end
  local exe = vim.fn.exepath("k2lsp")
  if exe ~= "" then
    return { exe, "--stdio" }
  end
  return nil
end

local function api_key_env()
  -- the api_key_cmd result (run once, asynchronously, at setup: k2lsp.key)
  return key.env(M.config.cmd_env, M.config.api_key_env)
end

local function show(ev)
  if ev.type == "run_started" and M.config.open_output then
    output.open(false)
  end
  -- a failed run is not announced here: the server says it once with window/showMessage
  local ok, err = pcall(output.render, ev)
  if not ok then
    notify("could not render event: " .. tostring(err), vim.log.levels.WARN)
  end
end

local function on_stream(_, result)
  if type(result) ~= "table" or type(result.events) ~= "table" then
    return
  end
  for _, ev in ipairs(result.events) do
    status.update(ev)
    require("k2lsp.heavy").on_event(ev)
    if ev.type == "run_finished" then
      review.clear(ev.run_id) -- a run cancelled during its review leaves no marks behind
    end
    if not chat.on_event(ev, show) then -- runs of the chat buffer render there (k2lsp.chat)
      show(ev)
    end
  end
end

local function on_delivery(_, result)
  if type(result) ~= "table" then
    return
  end
  -- the server also says it with window/showMessage: record it, do not repeat it
  status.delivered(result)
  review.on_delivery(result)
end

-- (root .. configHash) -> true once the user was asked about that configuration this session;
-- configurations the user declined are remembered across sessions in the state directory
M.trust_asked = {}

local function declined_path()
  return vim.fn.stdpath("state") .. "/k2lsp/trust-declined.json"
end

local function read_declined()
  local ok, lines = pcall(vim.fn.readfile, declined_path())
  if not ok or #lines == 0 then
    return {}
  end
  local good, data = pcall(vim.json.decode, table.concat(lines, "\n"))
  return (good and type(data) == "table") and data or {}
end

local function remember_declined(id)
  local data = read_declined()
  data[id] = os.date("!%Y-%m-%dT%H:%M:%SZ")
  vim.fn.mkdir(vim.fn.fnamemodify(declined_path(), ":h"), "p")
  vim.fn.writefile({ vim.json.encode(data) }, declined_path())
end

local function on_untrusted(_, result)
  if type(result) ~= "table" or type(result.root) ~= "string" then
    return
  end
  local id = result.root .. "|" .. tostring(result.configHash)
  if not M.config.ask_trust or result.editorDecides or M.trust_asked[id] or read_declined()[id] then
    return
  end
  M.trust_asked[id] = true
  local keys = table.concat(result.keys or {}, ", ")
  local prompt = string.format("k2lsp: %s sets %s in its k2lsp configuration. Trust this repository?",
    result.root, keys)
  local choices = { "Trust (apply its settings)", "Don't trust (don't ask again for this configuration)" }
  vim.schedule(function()
    vim.ui.select(choices, { prompt = prompt }, function(choice)
      if choice == choices[1] then
        M.exec("k2lsp.trust", { path = result.root }, function(r)
          notify("trusted " .. ((r and r.path) or result.root) .. "; its settings apply from the next run")
        end)
      elseif choice == choices[2] then
        remember_declined(id)
      end
    end)
  end)
end

--- The vim.lsp client configuration for `root`.
--- (`any_cmd`: a config even when k2lsp is not found, for lsp/k2lsp.lua)
function M.client_config(root, any_cmd)
  local cmd = M.resolve_cmd(root)
  if not cmd then
    if not any_cmd then
      return nil
    end
    cmd = { "k2lsp", "--stdio" }
  end
  local opts = vim.tbl_extend("keep", vim.deepcopy(M.config.settings), {
    streamNotifications = true,
    reviewHunks = true, -- with settings.preview: review per hunk in the buffers (k2lsp.review)
    transcript = false,
    logReasoning = false,
  })
  return {
    name = NAME,
    cmd = cmd,
    cmd_env = api_key_env(),
    root_dir = root,
    init_options = { k2lsp = opts },
    -- Neovim applies documentChanges (versioned edits, create/delete files) but does not say
    -- so; without it k2lsp would have to send unversioned edits and write new files to disk
    capabilities = vim.tbl_deep_extend("force", vim.lsp.protocol.make_client_capabilities(), {
      workspace = { workspaceEdit = { documentChanges = true } },
    }),
    -- every keystroke reaches k2lsp at once, so its view is current when it delivers
    flags = { debounce_text_changes = 0, allow_incremental_sync = true },
    handlers = {
      ["k2lsp/stream"] = on_stream,
      -- the server's messages through vim.notify (once each; nvim-notify & co. show them)
      ["window/showMessage"] = function(_, params)
        local levels = { vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO, vim.log.levels.DEBUG }
        if type(params) == "table" and type(params.message) == "string" then
          vim.notify(params.message, levels[params.type] or vim.log.levels.INFO)
        end
        return vim.NIL
      end,
      ["k2lsp/delivery"] = on_delivery,
      ["k2lsp/review"] = review.on_review,
      ["k2lsp/untrusted"] = on_untrusted,
      ["workspace/applyEdit"] = apply.handler,
    },
    -- code actions get every diagnostic under the cursor, not only k2lsp's own
    on_init = function(client) diagnostics.wrap(client) end,
  }
end

local warned = false

--- Start (or reuse) the server for buffer `buf` and attach it.
function M.attach(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local name = vim.api.nvim_buf_get_name(buf)
  if vim.bo[buf].buftype ~= "" or name == "" then
    return nil
  end
  -- k2lsp's own diffs and saved patches are not part of a project: no second server for them
  if name:find("/k2lsp/previews/", 1, true) or name:find("/k2lsp/patches/", 1, true) then
    return nil
  end
  if key.state == "running" then -- api_key_cmd still running: attach when it is done
    key.when_ready(function() M.attach(buf) end)
    return nil
  end
  if not vim.api.nvim_buf_is_valid(buf) then
    return nil
  end
  local root = vim.fs.root(buf, M.config.root_markers) or vim.fs.dirname(vim.api.nvim_buf_get_name(buf))
  local cfg = M.client_config(root)
  local problem = nil
  if not cfg then
    problem = "k2lsp not found on PATH: pip install k2lsp, or set cmd in setup{}"
  elseif vim.fn.executable(cfg.cmd[1]) ~= 1 then
    problem = "cannot run " .. cfg.cmd[1] .. ": not an executable; fix cmd in setup{} or pip install k2lsp"
  end
  if problem then
    if not warned then
      warned = true
      notify(problem, vim.log.levels.ERROR)
    end
    return nil
  end
  return vim.lsp.start(cfg, { bufnr = buf })
end

--- The k2lsp client of the current buffer, else any running k2lsp client.
function M.client()
  local clients = vim.lsp.get_clients({ name = NAME, bufnr = 0 })
  if #clients == 0 then
    clients = vim.lsp.get_clients({ name = NAME })
  end
  return clients[1]
end

--- `client`'s request of `method` (the 0.11 method call or the 0.10 field call).
local function request(client, method, params, handler)
  if has_011 then
    return client:request(method, params, handler)
  end
  return client.request(method, params, handler)
end
M.request = request

--- Run `workspace/executeCommand` for `command` with one argument object `args`.
function M.exec(command, args, on_result, on_error)
  local client = M.client()
  if not client then
    notify("no k2lsp server is running (open a file of the project first)", vim.log.levels.ERROR)
    return
  end
  request(client, "workspace/executeCommand", { command = command, arguments = { args or vim.empty_dict() } }, function(err, result)
    if err then
      notify(command .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      if on_error then
        on_error(err)
      end
      return
    end
    if on_result then
      on_result(result)
    end
  end)
end

local function text_args(opts)
  local client = M.client()
  local args = { uri = vim.uri_from_bufnr(0) }
  if opts.range and opts.range > 0 and client then
    local last = vim.api.nvim_buf_get_lines(0, opts.line2 - 1, opts.line2, false)[1] or ""
    local p = vim.lsp.util.make_given_range_params({ opts.line1, 0 }, { opts.line2, #last }, 0, client.offset_encoding)
    args.range = p.range
  end
  return args
end

local function started(result)
  if type(result) == "table" and result.runId then
    notify("run " .. result.runId .. " started")
  end
end

local function need_text(opts, what)
  if opts.args == "" then
    notify("usage: give the " .. what .. " after the command", vim.log.levels.ERROR)
    return false
  end
  return true
end

local commands = {
  K2Ask = { nargs = "*", range = true, fn = function(o)
    if need_text(o, "question") then
      M.exec("k2lsp.ask", vim.tbl_extend("force", text_args(o), { question = o.args }), started)
    end
  end },
  K2Task = { nargs = "*", range = true, fn = function(o)
    if need_text(o, "task") then
      M.exec("k2lsp.task", vim.tbl_extend("force", text_args(o), { task = o.args }), started)
    end
  end },
  K2FixTest = { nargs = "?", fn = function(o)
    if o.args ~= "" then
      M.exec("k2lsp.fixFailingTest", { uri = vim.uri_from_bufnr(0), testName = o.args }, started)
      return
    end
    vim.lsp.buf.code_action({
      apply = true,
      filter = function(a) return (a.title or ""):find("Fix failing test", 1, true) ~= nil end,
    })
  end },
  K2Explain = { range = true, fn = function(o) M.exec("k2lsp.explain", text_args(o), started) end },
  K2Refactor = { nargs = "*", range = true, fn = function(o)
    local args = text_args(o)
    if o.args ~= "" then
      args.instruction = o.args
    end
    M.exec("k2lsp.refactor", args, started)
  end },
  K2RefactorRepo = { nargs = "+", fn = function(o)
    M.exec("k2lsp.refactorRepository", { instruction = o.args }, function()
      notify("refactor job started; its result comes as the branch k2lsp/<job-id>")
    end)
  end },
  K2Cancel = { nargs = "?", fn = function(o)
    M.exec("k2lsp.cancel", o.args ~= "" and { runId = o.args } or vim.empty_dict(), function(r)
      local what = vim.deepcopy(r and r.cancelled or {})
      if r and r.jobs then what[#what + 1] = r.jobs .. " refactor job(s) (resumable)" end
      notify(#what > 0 and ("cancelled " .. table.concat(what, ", ")) or "no run to cancel")
    end)
  end },
  K2Undo = { nargs = "?", fn = function(o)
    M.exec("k2lsp.undo", o.args ~= "" and { runId = o.args } or vim.empty_dict(), function(r)
      -- reload buffers of files restored on disk; files the undo deleted are gone with their
      -- buffers (a blanket :checktime would stop on them with E211)
      for _, b in ipairs(vim.api.nvim_list_bufs()) do
        local name = vim.api.nvim_buf_get_name(b)
        if vim.api.nvim_buf_is_loaded(b) and name ~= "" and vim.bo[b].buftype == "" and vim.uv.fs_stat(name) then
          pcall(vim.cmd, "checktime " .. b)
        end
      end
      notify("undid " .. ((r and r.runId) or "?") .. ": " .. table.concat((r and r.restored) or {}, ", "))
    end)
  end },
  -- the hunk under the cursor (any window), `all`, or a run id; a plain preview without review
  K2Accept = { nargs = "?", fn = function(o)
    if not review.command(o.args, true) then
      M.exec("k2lsp.accept", (o.args ~= "" and o.args ~= "all") and { runId = o.args } or vim.empty_dict())
    end
  end },
  K2Reject = { nargs = "?", fn = function(o)
    if not review.command(o.args, false) then
      M.exec("k2lsp.reject", (o.args ~= "" and o.args ~= "all") and { runId = o.args } or vim.empty_dict())
    end
  end },
  K2Review = { fn = function() review.open_list() end },
  K2Candidates = { nargs = "?", fn = function(o) require("k2lsp.heavy").pick(o.args) end },
  K2ApplyPatch = { nargs = "?", complete = "file", fn = function(o)
    local args = o.args ~= "" and { path = vim.fn.fnamemodify(o.args, ":p") } or vim.empty_dict()
    M.exec("k2lsp.applyPatch", args) -- the server says what it applied (or why not)
  end },
  K2Status = { fn = function()
    M.exec("k2lsp.status", vim.empty_dict(), function(r)
      notify(string.format("%d active run(s), %d tokens, $%.4f", r.active or 0,
        (r.promptTokens or 0) + (r.completionTokens or 0), r.costUsd or 0))
    end)
  end },
  K2Output = { fn = function() output.toggle() end },
  K2Chat = { fn = function() chat.open(vim.api.nvim_get_current_buf()) end },
  K2ChatNew = { fn = function() chat.open(vim.api.nvim_get_current_buf()); chat.new() end },
  K2Trust = { nargs = "?", fn = function(o)
    M.exec("k2lsp.trust", o.args ~= "" and { path = vim.fn.fnamemodify(o.args, ":p") } or vim.empty_dict(),
      function(r) notify("trusted " .. ((r and r.path) or "?") .. "; its settings apply from the next run") end)
  end },
}

--- Configure k2lsp and start it for matching buffers. `opts` extends `M.defaults`.
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  review.keymaps = M.config.review_keymaps
  warned = false
  key.start(M.config.api_key_cmd)
  for name, spec in pairs(commands) do
    vim.api.nvim_create_user_command(name, spec.fn, { nargs = spec.nargs or 0, range = spec.range, complete = spec.complete })
  end
  local group = vim.api.nvim_create_augroup("k2lsp", { clear = true })
  local pattern = M.config.filetypes or "*"
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = pattern,
    callback = function(ev) M.attach(ev.buf) end,
  })
  if M.config.filetypes == nil then
    -- buffers without a filetype never fire FileType
    vim.api.nvim_create_autocmd({ "BufReadPost", "BufNewFile" }, {
      group = group,
      callback = function(ev) if vim.bo[ev.buf].filetype == "" then M.attach(ev.buf) end end,
    })
  end
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      M.attach(buf)
    end
  end
end

return M
