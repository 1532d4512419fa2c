"""Read-only git views of the run copy for the model: status, diff, log and show.

In a run the workspace root is the run copy, a worktree whose HEAD is the run's starting
snapshot, so `git_diff` shows exactly what the agent changed so far. Paths are confined to the
workspace; files on the secret denylist are left out of diffs and refused by `git_show`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from k2lsp.errors import PathError
from k2lsp.redact import redact
from k2lsp.runs import gitcmd
from k2lsp.tools.base import ToolContext, ToolError, cap_output, tool


class GitStatusParams(BaseModel):
    """Arguments of git_status."""

    paths: list[str] | None = Field(
        default=None, description="Limit to these paths (files or folders)."
    )


class GitDiffParams(BaseModel):
    """Arguments of git_diff."""

    paths: list[str] | None = Field(default=None, description="Limit to these paths.")
    staged: bool = Field(default=False, description="Show staged changes instead of unstaged ones.")


class GitLogParams(BaseModel):
    """Arguments of git_log."""

    n: int = Field(default=10, ge=1, le=200, description="How many commits to show (1-200).")
    paths: list[str] | None = Field(default=None, description="Only commits touching these paths.")


class GitShowParams(BaseModel):
    """Arguments of git_show."""

    rev: str = Field(description="A revision: commit id, branch, tag or HEAD~N.")
    path: str = Field(description="File path relative to the workspace root.")


def _git(ctx: ToolContext, *args: str) -> str:
    """Run a read-only git command in the workspace; ToolError with git's message on failure."""
    try:
        proc = gitcmd.run(ctx.root, "--no-pager", *args)
    except gitcmd.GitError as exc:
        if "not a git repository" in exc.stderr:
            raise ToolError(
                "the workspace is not a git repository; git tools are unavailable"
            ) from None
        raise ToolError(exc.stderr or str(exc)) from None
    return proc.stdout.decode("utf-8", "replace")


def _pathspecs(ctx: ToolContext, paths: list[str] | None) -> list[str]:
    """Confined, literal pathspecs for `paths` (workspace root when empty)."""
    out = []
    for raw in paths or []:
        try:
            abs_path = ctx.workspace.resolve(raw)
        except PathError as exc:
            raise ToolError(str(exc)) from None
        out.append(":(literal)" + ctx.workspace.rel(abs_path))
    return out or ["."]


def _secret_excludes(ctx: ToolContext) -> list[str]:
    ws = ctx.workspace
    if getattr(ws, "allow_secrets", False):
        return []
    return [f":(exclude,glob)**/{pat}" for pat in ws.secret_patterns() if "/" not in pat] + [
        f":(exclude,glob){pat}" for pat in ws.secret_patterns() if "/" in pat
    ]


def _finish(text: str, empty: str, hint: str) -> str:
    text = redact(text)
    return cap_output(text, hint=hint) if text.strip() else empty


@tool("git_status", GitStatusParams, writes="none")
def git_status(ctx: ToolContext, args: GitStatusParams) -> str:
    """Show the status of the workspace: branch, changed, staged and untracked files."""
    specs = _pathspecs(ctx, args.paths)
    text = _git(ctx, "status", "--short", "--branch", "--untracked-files=all", "--", *specs)
    return _finish(text, "nothing changed", "pass paths to narrow the status")


@tool("git_diff", GitDiffParams, writes="none")
def git_diff(ctx: ToolContext, args: GitDiffParams) -> str:
    """Show the unified diff of changes in the workspace (unstaged by default, or staged)."""
    cmd = ["diff", "--no-ext-diff", "--no-color", "--no-textconv", "--stat", "--patch"]
    if args.staged:
        cmd.append("--cached")
    specs = _pathspecs(ctx, args.paths) + _secret_excludes(ctx)
    text = _git(ctx, *cmd, "--", *specs)
    return _finish(text, "no differences", "pass paths to see one file's diff")


@tool("git_log", GitLogParams, writes="none")
def git_log(ctx: ToolContext, args: GitLogParams) -> str:
    """Show recent commits (id, date, author, subject), newest first."""
    fmt = "--format=%h %ad %an: %s"
    specs = _pathspecs(ctx, args.paths) if args.paths else []
    text = _git(ctx, "log", f"-n{args.n}", "--date=short", fmt, "--", *specs)
    return _finish(text, "no commits yet", "lower n or pass paths")


@tool("git_show", GitShowParams, writes="none")
def git_show(ctx: ToolContext, args: GitShowParams) -> str:
    """Show the content of a file as it was at a given revision."""
    rev = args.rev.strip()
    if not rev or rev.startswith("-") or ":" in rev or any(c.isspace() for c in rev):
        raise ToolError(f"{args.rev!r} is not a revision; give a commit id, branch, tag or HEAD~N")
    try:
        rel = ctx.workspace.rel(ctx.workspace.check_readable(args.path))
    except PathError as exc:
        raise ToolError(str(exc)) from None
    commit = gitcmd.rev(ctx.root, f"{rev}^{{commit}}")
    if commit is None:
        raise ToolError(f"unknown revision {rev!r}; see git_log for commit ids")
    data = gitcmd.cat_file(ctx.root, f"{commit}:./{rel}")
    if data is None:
        raise ToolError(f"{rel} does not exist at {rev}")
    if b"\x00" in data[:8192]:
        return f"{rel} at {rev} is a binary file ({len(data):,} bytes)"
    text = data.decode("utf-8", "replace")
    return _finish(text, f"{rel} is empty at {rev}", "use read_file on the current version to page")
