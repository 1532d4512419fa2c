-- workspace/applyEdit for the k2lsp client: all or nothing, never on a buffer that moved on.
--
-- Stock Neovim checks the version of the first TextDocumentEdit only, skips a stale one with a
-- print and still answers `applied = true`, and truncates an existing file on CreateFile. Here
-- every versioned edit is checked before anything changes; a stale one, a file that appeared
-- where one is created, or a modified buffer deleted without a version pin refuses the whole
-- edit with a reason, so the server plans again on the current text (or reports a conflict).
local M = {}

local function is_set(v)
  return v ~= nil and v ~= vim.NIL
end

--- The loaded buffer showing `uri`, if any.
local function loaded_buf(uri)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) and vim.api.nvim_buf_get_name(b) ~= "" and vim.uri_from_bufnr(b) == uri then
      return b
    end
  end
  return nil
end

local function version_of(buf)
  return vim.lsp.util.buf_versions[buf] or vim.b[buf].changedtick
end

--- Why `edit` cannot be applied as a whole now, or nil when it can.
function M.check(edit)
  local pinned = {}
  for _, change in ipairs(edit.documentChanges or {}) do
    if change.kind == nil then
      local doc = change.textDocument
      if is_set(doc.version) then
        local buf = loaded_buf(doc.uri)
        if not buf then
          return vim.uri_to_fname(doc.uri) .. " was closed since k2lsp planned the edit"
        end
        local now = version_of(buf)
        if now ~= doc.version then
          return string.format("%s changed in the editor (version %d, the edit is for %d)",
            vim.uri_to_fname(doc.uri), now, doc.version)
        end
        pinned[doc.uri] = true
      end
    elseif change.kind == "create" then
      local opts = change.options or {}
      local fname = vim.uri_to_fname(change.uri)
      if not (opts.overwrite or opts.ignoreIfExists) and (vim.uv.fs_stat(fname) or loaded_buf(change.uri)) then
        return fname .. " already exists; k2lsp will not create over it"
      end
    elseif change.kind == "delete" then
      local buf = loaded_buf(change.uri)
      if buf and vim.bo[buf].modified and not pinned[change.uri] then
        return vim.uri_to_fname(change.uri) .. " has unsaved changes; k2lsp will not delete it"
      end
    end
  end
  return nil
end

--- Text inserted into a new (empty) buffer leaves the buffer's one empty line after it: the
--- file would be saved with an extra blank line. Remove it within the same undo step.
local function drop_extra_last_line(buf)
  local n = vim.api.nvim_buf_line_count(buf)
  if n > 1 and vim.api.nvim_buf_get_lines(buf, n - 1, n, false)[1] == "" then
    vim.api.nvim_buf_call(buf, function()
      pcall(vim.cmd, "undojoin")
      vim.api.nvim_buf_set_lines(buf, n - 1, n, false, {})
    end)
  end
end

--- The `workspace/applyEdit` handler of the k2lsp client.
function M.handler(_, params, ctx)
  local edit = params and params.edit
  if type(edit) ~= "table" then
    return { applied = false, failureReason = "workspace/applyEdit without an edit" }
  end
  local why = M.check(edit)
  if why then
    return { applied = false, failureReason = why }
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local encoding = client and client.offset_encoding or "utf-16"
  local ok, err = pcall(vim.lsp.util.apply_workspace_edit, edit, encoding)
  if not ok then
    return { applied = false, failureReason = tostring(err) }
  end
  for _, change in ipairs(edit.documentChanges or {}) do
    local buf = change.kind and loaded_buf(change.uri or change.newUri)
    if buf and change.kind == "create" then
      drop_extra_last_line(buf)
    end
    if buf then -- a created or renamed file is a buffer now: let k2lsp see it (for :K2Undo)
      require("k2lsp").attach(buf)
    end
  end
  return { applied = true }
end

return M
