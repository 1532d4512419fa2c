-- The :K2Review list: every pending hunk of every review in a scratch buffer (never attached
-- to a language server); `:K2Accept` / `:K2Reject` on a hunk's lines decide that hunk.
local L = {}
local LIST_NAME = "k2lsp://review"

local function prefixed(lines, mark)
  local out = {}
  for _, l in ipairs(lines) do
    out[#out + 1] = mark .. l
  end
  return out
end

--- Fill the review list buffer `buf` with every pending hunk.
function L.fill(buf)
  local lines, refs = {}, {}
  local R = require("k2lsp.review")
  for _, rev in ipairs(R.pending()) do
    lines[#lines + 1] = "# K2 run " .. rev.id .. " " .. rev.title
    local group = nil
    for _, f in ipairs(rev.files) do
      for _, h in ipairs(f.hunks) do
        if h.state == "pending" then
          if f.group and f.group ~= "" and f.group ~= group then -- a refactor job's batch
            group = f.group
            lines[#lines + 1] = "## " .. group
          end
          local first = #lines
          local row = h.mark and (R.rows(h)) or h.start -- where it is now, after any typing
          local where = f.kind == "modified" and ("line " .. (row + 1)) or f.kind
          lines[#lines + 1] = string.format("@@ %s %s #%d", f.path, where, h.id)
          vim.list_extend(lines, prefixed(h.oldLines, "-"))
          vim.list_extend(lines, prefixed(h.newLines, "+"))
          for r = first, #lines - 1 do
            refs[tostring(r)] = { rev.id, h.id }
          end
        end
      end
    end
  end
  if #lines == 0 then
    lines = { "# no K2 change waiting for review" }
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.b[buf].k2lsp_review_lines = refs
end

--- :K2Review: the pending hunks in a split below (your window stays as it is).
function L.open()
  local buf = vim.fn.bufnr(LIST_NAME)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_name(buf, LIST_NAME)
    vim.bo[buf].filetype = "diff"
    vim.bo[buf].bufhidden = "hide"
  end
  L.fill(buf)
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd("botright sbuffer " .. buf)
    win = vim.api.nvim_get_current_win()
  end
  vim.api.nvim_set_current_win(win)
  return buf
end

--- Refill every open list (after a decision or a new review).
function L.refresh()
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(b) and vim.b[b].k2lsp_review_lines then
      L.fill(b)
    end
  end
end

return L
