"""Language-server tools: `references` (scope-aware), `rename_symbol` (the server's own
`textDocument/rename`, applied through the syntax gate) and `diagnostics` (the server's errors
for changed files, before vs after the run's edits).

The servers run confined on the run copy (see `k2lsp.lspc.servers`), start on first use and are
shut down with the run (`close_servers`). Where no server handles a file, `references` and
`rename_symbol` fall back to tree-sitter name matching and say so in their answer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field

from k2lsp.lspc.fallback import file_sites, name_sites
from k2lsp.lspc.pool import ServerPool, close_pool, pool_of, workspace_edit_files
from k2lsp.lspc.rpc import LspError
from k2lsp.lspc.text import Site, TextEdit
from k2lsp.tools import fileops
from k2lsp.tools.base import ToolError, ToolResult, cap_output, tool
from k2lsp.tools.sites import apply_file_edits, in_scope, listing, locate, summary_counts

if TYPE_CHECKING:
    from k2lsp.lspc.session import ServerSession
    from k2lsp.tools.base import ToolContext

_NAME = re.compile(r"[^\W\d]\w*")


def pool(ctx: ToolContext) -> ServerPool:
    """The run's language servers."""
    return pool_of(ctx.state, ctx.root, ctx.settings)


def close_servers(state: dict[str, Any]) -> None:
    """Shut down the servers a run started (the session calls this when the run ends)."""
    close_pool(state)


class ReferencesParams(fileops.Params):
    """Arguments of references."""

    path: str = Field(description="A file where the symbol occurs (its definition is best).")
    symbol: str = Field(description="The symbol's name as written in that file.")
    line: int | None = Field(
        default=None, ge=1, description="The line of that occurrence (default: its definition)."
    )
    paths: list[str] | None = Field(
        default=None, description="Only list sites in these files or folders (default: all)."
    )


def find_sites(
    ctx: ToolContext, path: str, symbol: str, line: int | None
) -> tuple[list[Site], str]:
    """Every reference of the symbol and where they came from (server name or the fallback)."""
    at = locate(ctx, path, symbol, line)
    name = symbol.rsplit(".", 1)[-1]
    session, why = pool(ctx).for_file(at.path)
    if session is not None:
        try:
            sites = session.references(at.path, at.line, at.column)
            sites = [s for s in sites if not fileops.is_secret(ctx, s.path)]
            return sites, f"language server {session.name} ({session.confinement})"
        except LspError as exc:
            why = f"{session.name} failed: {exc}"
    sites = [s for s in name_sites(ctx.root, name) if not fileops.is_secret(ctx, s.path)]
    return sites, f"FALLBACK tree-sitter name matching ({why}); same-named symbols are included"


@tool("references", ReferencesParams, writes="none")
def references(ctx: ToolContext, args: ReferencesParams) -> ToolResult:
    """Every reference of a symbol (definition, imports, calls, attribute uses) found by the
    project's language server, so same-named but unrelated symbols are left out. Without a
    server it falls back to tree-sitter name matching and says so."""
    sites, source = find_sites(ctx, args.path, args.symbol, args.line)
    sites = [s for s in sites if in_scope(s.path, args.paths)]
    head = f"{summary_counts(sites)} for {args.symbol!r} (by {source}):\n"
    return ToolResult(True, cap_output(head + listing(ctx, sites)), head.strip()[:120])


class RenameParams(fileops.Params):
    """Arguments of rename_symbol."""

    path: str = Field(description="A file where the symbol occurs (its definition is best).")
    symbol: str = Field(description="The symbol's current name as written in that file.")
    new_name: str = Field(description="The new name.")
    line: int | None = Field(
        default=None, ge=1, description="The line of that occurrence (default: its definition)."
    )
    paths: list[str] | None = Field(
        default=None,
        description="Only change these files or folders (a batch of a larger rename); the "
        "answer lists how many sites remain elsewhere.",
    )


def rename_edits(
    ctx: ToolContext, args: RenameParams
) -> tuple[dict[str, list[TextEdit]], list[str], str]:
    """The rename's edits per file, what was left out, and the source of the edits."""
    if not _NAME.fullmatch(args.new_name):
        raise ToolError(f"new_name {args.new_name!r} is not an identifier")
    at = locate(ctx, args.path, args.symbol, args.line)
    session, why = pool(ctx).for_file(at.path)
    if session is not None:
        try:
            return _server_rename(ctx, session, at, args.new_name)
        except LspError as exc:
            why = f"{session.name} failed: {exc}"
    sites = name_sites(ctx.root, args.symbol.rsplit(".", 1)[-1])
    per_file: dict[str, list[TextEdit]] = {}
    for site in sites:
        per_file.setdefault(site.path, []).append(_site_edit(ctx, site, args.new_name))
    note = f"FALLBACK tree-sitter name matching ({why}); same-named symbols are renamed too"
    return per_file, [], note


def _server_rename(
    ctx: ToolContext, session: ServerSession, at: Site, new_name: str
) -> tuple[dict[str, list[TextEdit]], list[str], str]:
    edit = session.rename(at.path, at.line, at.column, new_name)
    if not edit:
        raise ToolError(f"{session.name} cannot rename the symbol at {at.path}:{at.line}")

    def read(rel: str) -> str:
        abs_path, rel = fileops.confined(ctx, rel)
        return fileops.load_text(ctx, abs_path, rel).raw

    per_file, skipped = workspace_edit_files(edit, ctx.root, read)
    return per_file, skipped, f"language server {session.name} ({session.confinement})"


def _site_edit(ctx: ToolContext, site: Site, new_name: str) -> TextEdit:
    abs_path, rel = fileops.confined(ctx, site.path)
    text = fileops.load_text(ctx, abs_path, rel).raw
    start = _offset(text, site.line, site.column)
    return TextEdit(start, start + site.length, new_name)


def _offset(text: str, line: int, column: int) -> int:
    pos = 0
    for _ in range(line - 1):
        pos = text.index("\n", pos) + 1
    return pos + column - 1


@tool("rename_symbol", RenameParams, writes="recorded", edits=True)
def rename_symbol(ctx: ToolContext, args: RenameParams) -> ToolResult:
    """Rename a symbol everywhere it is used, with the language server's own rename (scope
    aware: imports, attribute uses, keyword arguments). Each changed file passes the syntax gate.
    `paths` limits the change to some files. Without a server it falls back to tree-sitter name
    matching and says so."""
    per_file, skipped, source = rename_edits(ctx, args)
    secret = [rel for rel in per_file if fileops.is_secret(ctx, rel)]
    mine = {r: e for r, e in per_file.items() if in_scope(r, args.paths) and r not in secret}
    rest = {r: e for r, e in per_file.items() if r not in mine and r not in secret}
    new = args.new_name

    def renamed(rel: str, old_text: str, new_text: str) -> int:
        return len(file_sites(rel, new_text, new)) - len(file_sites(rel, old_text, new))

    done = apply_file_edits(ctx, mine, renamed)
    lines = [
        f"Renamed {args.symbol!r} to {args.new_name!r} at {fileops.plural(done.count, 'site')} "
        f"in {fileops.plural(len(done.written), 'file')} (by {source})."
    ]
    lines += [f"  {rel}: {n}" for rel, n in sorted(done.written.items())]
    if rest:
        lines.append(
            f"Not changed (outside `paths`): "
            f"{fileops.plural(len(rest), 'file')}: {', '.join(sorted(rest)[:30])}"
        )
    for rel, why in sorted(done.refused.items()):
        lines.append(f"REFUSED {rel}: {why}")
    for rel in secret:
        lines.append(f"SKIPPED {rel}: on the secret denylist")
    for item in skipped:
        lines.append(f"NOT APPLIED: {item}")
    ok = not done.refused
    return ToolResult(ok, cap_output("\n".join(lines)), lines[0][:120])
