"""`diagnostics`: the language server's errors and warnings for the files the run changed,
before vs after the run's edits, so the model sees what it introduced (a type error, an
undefined name) and what it fixed. Without a server, the syntax gate's own checks are used.

The "before" text of a file comes from the run's starting snapshot (`ctx.state["base_text"]`,
set by the session) or, outside a run, from the text the file had when a tool first showed it
to the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from k2lsp.lspc.rpc import LspError
from k2lsp.lspc.syntax import added, line_of
from k2lsp.tools import fileops
from k2lsp.tools.base import ToolResult, cap_output, tool
from k2lsp.tools.refs import pool

if TYPE_CHECKING:
    from k2lsp.tools.base import ToolContext

SEVERITY = {1: "error", 2: "warning", 3: "info", 4: "hint"}
MAX_FILES = 40


class DiagnosticsParams(fileops.Params):
    """Arguments of diagnostics."""

    paths: list[str] | None = Field(
        default=None, description="Files to check (default: every file this run changed)."
    )
    include_warnings: bool = Field(default=True, description="Also list warnings.")


def file_report(ctx: ToolContext, rel: str, warnings: bool) -> tuple[list[str], int, str]:
    """Lines describing `rel`'s new and fixed problems, the count of new ones, the checker."""
    if fileops.is_secret(ctx, rel):
        return [f"{rel}: on the secret denylist; not checked"], 0, "nothing"
    session, why = pool(ctx).for_file(rel)
    if session is None:
        return _syntax_only(ctx, rel), 0, f"syntax check only ({why})"
    worst = 2 if warnings else 1
    base = ctx.state.get("base_text")
    before_text = base(rel) if callable(base) else None
    try:
        before = session.file_diagnostics(rel, before_text) if before_text is not None else []
        after = session.file_diagnostics(rel)
    except (LspError, OSError) as exc:
        return [f"{rel}: the server failed: {exc}"], 0, session.name
    keep = [d for d in after if int(d.get("severity") or 1) <= worst]
    kept_before = [d for d in before if int(d.get("severity") or 1) <= worst]
    new = added(kept_before, keep)
    lines = [
        f"{rel}:{line_of(d)}: NEW {SEVERITY.get(int(d.get('severity') or 1), 'error')}: "
        f"{str(d.get('message'))[:300]}"
        for d in sorted(new, key=line_of)
    ]
    fixed = len(added(keep, kept_before))  # before's problems that are gone
    if fixed:
        lines.append(f"{rel}: {fileops.plural(fixed, 'problem')} of before are gone")
    if not lines:
        lines.append(f"{rel}: no new problems ({len(keep)} present before and after)")
    return lines, len(new), session.name


def _syntax_only(ctx: ToolContext, rel: str) -> list[str]:
    from k2lsp.code.gate import check_edit

    try:
        abs_path, rel = fileops.confined(ctx, rel)
        check_edit(rel, None, fileops.load_text(ctx, abs_path, rel).raw)
    except Exception as exc:  # ToolError from the gate, or an unreadable file
        return [f"{rel}: {exc}"]
    return [f"{rel}: parses"]


@tool("diagnostics", DiagnosticsParams, writes="none")
def diagnostics(ctx: ToolContext, args: DiagnosticsParams) -> ToolResult:
    """The language server's errors (and warnings) in the files you changed, compared with the
    same files before your edits: NEW lines are problems you introduced; fix them. Falls back to
    a syntax check where no server handles a file."""
    rels = list(dict.fromkeys(args.paths or ctx.changes.paths()))[:MAX_FILES]
    if not rels:
        return ToolResult(True, "No files changed yet; nothing to check.", "nothing to check")
    out: list[str] = []
    total = 0
    checkers: set[str] = set()
    for rel in rels:
        lines, new, checker = file_report(ctx, rel, args.include_warnings)
        out += lines
        total += new
        checkers.add(checker)
    head = (
        f"{fileops.plural(total, 'new problem')} in {fileops.plural(len(rels), 'file')} "
        f"(by {', '.join(sorted(checkers))}):"
    )
    return ToolResult(True, cap_output(head + "\n" + "\n".join(out)), head[:120])
