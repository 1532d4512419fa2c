"""Branch delivery on the user's HEAD: the run's own changes, without the user's uncommitted
edits.

A run starts from HEAD + uncommitted edits (its snapshot). Committing the run copy's whole
tree would put those uncommitted edits into the branch too, and the printed `git merge
k2lsp/<run>` would then fail on the dirty tree ("local changes would be overwritten").
`tree_on_head` applies the run's diff (run copy vs its start snapshot) onto HEAD's tree in a
private index (`git apply --cached --3way`), so the branch holds HEAD + the run's changes only.
When the diff does not apply to HEAD (the run changed lines that exist only in the user's
uncommitted edits), it returns None and the caller falls back to the snapshot and says so.
"""

from __future__ import annotations

from pathlib import Path

from k2lsp.runs import gitcmd
from k2lsp.runs.gitcmd import GitError


def user_head(source: Path) -> str | None:
    """The commit the user's HEAD points at (None for an unborn branch)."""
    return gitcmd.rev(source, "HEAD")


def tree_on_head(source: Path, head: str, patch: str, prefix: str = "") -> str | None:
    """The tree of `head` with `patch` applied (paths relative to `prefix`), or None."""
    if not patch.strip():
        return None
    top = gitcmd.toplevel(source) or source
    args = ["apply", "--cached", "--3way", "--whitespace=nowarn"]
    if prefix:
        args.append(f"--directory={prefix}")
    with gitcmd.temp_index() as env:
        try:
            gitcmd.run(top, "read-tree", head, env=env)
            gitcmd.run(top, *args, "-", env=env, input=patch.encode("utf-8", "surrogateescape"))
            return gitcmd.out(top, "write-tree", env=env)
        except GitError:
            return None


def dirty(source: Path) -> bool:
    """The user's tree has uncommitted changes to tracked files."""
    try:
        proc = gitcmd.run(source, "status", "--porcelain", "--untracked-files=no")
    except GitError:
        return False
    return bool(proc.stdout.strip())
