-- Every diagnostic under the cursor, whatever its source (other language servers, linters via
-- vim.diagnostic, other namespaces), goes to k2lsp in the code action request's
-- context.diagnostics, so "K2: Fix …" is offered for all of them. Neovim itself sends a
-- server only its own diagnostics.
local M = {}

local has_011 = vim.fn.has("nvim-0.11") == 1

local function character(bufnr, row, col, encoding)
  local ok, n = pcall(vim.lsp.util.character_offset, bufnr, row, col, encoding)
  return ok and n or col
end

--- The LSP form of a vim.diagnostic entry (the original when another server sent it).
function M.to_lsp(d, bufnr, encoding)
  local original = type(d.user_data) == "table" and d.user_data.lsp or nil
  if type(original) == "table" and original.range and original.message then
    return vim.deepcopy(original)
  end
  local end_lnum = d.end_lnum or d.lnum
  local end_col = d.end_col or d.col
  return {
    range = {
      start = { line = d.lnum, character = character(bufnr, d.lnum, d.col or 0, encoding) },
      ["end"] = { line = end_lnum, character = character(bufnr, end_lnum, end_col or 0, encoding) },
    },
    message = d.message,
    severity = d.severity,
    source = d.source,
    code = d.code,
  }
end

--- Diagnostics of every namespace touching the lines of `range` (an LSP range).
function M.under(bufnr, range, encoding)
  local first, last = range.start.line, range["end"].line
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.lnum <= last and (d.end_lnum or d.lnum) >= first then
      table.insert(out, M.to_lsp(d, bufnr, encoding))
    end
  end
  return out
end

local function key(d)
  return table.concat({ d.range.start.line, d.range.start.character, d.message or "" }, "\0")
end

--- `params` of a textDocument/codeAction with every diagnostic under its range added.
function M.augment(params, bufnr, encoding)
  if type(params) ~= "table" or type(params.range) ~= "table" then
    return params
  end
  bufnr = (bufnr == nil or bufnr == 0) and vim.uri_to_bufnr(params.textDocument.uri) or bufnr
  params.context = params.context or {}
  local list = params.context.diagnostics or {}
  local seen = {}
  for _, d in ipairs(list) do
    seen[key(d)] = true
  end
  for _, d in ipairs(M.under(bufnr, params.range, encoding or "utf-16")) do
    if not seen[key(d)] then
      seen[key(d)] = true
      table.insert(list, d)
    end
  end
  params.context.diagnostics = list
  return params
end

--- Make `client` add every diagnostic under the range to its code action requests (whatever
--- asks: vim.lsp.buf.code_action, a picker plugin, :K2FixTest).
function M.wrap(client)
  if client._k2lsp_diagnostics then
    return
  end
  client._k2lsp_diagnostics = true
  local original = client.request
  if has_011 then
    client.request = function(self, method, params, handler, bufnr)
      if method == "textDocument/codeAction" then
        local ok, p = pcall(M.augment, vim.deepcopy(params), bufnr, self.offset_encoding)
        params = ok and p or params
      end
      return original(self, method, params, handler, bufnr)
    end
  else
    client.request = function(method, params, handler, bufnr)
      if method == "textDocument/codeAction" then
        local ok, p = pcall(M.augment, vim.deepcopy(params), bufnr, client.offset_encoding)
        params = ok and p or params
      end
      return original(method, params, handler, bufnr)
    end
  end
end

return M
