"""How a run's starting snapshot is built without touching the user's repository state.

A private temporary index receives `git add -A` of the user's work tree (honouring
.gitignore; files on the secret denylist keep their committed version or stay out, so no
secret the user has not committed ends up in a k2lsp commit or branch), then the unsaved
editor buffers; `write-tree` + `commit-tree` make the snapshot
commit. The user's index, stash list, HEAD and branches are never written. Also parses
`git diff-tree -r -z` raw output for the run copy's change set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from k2lsp.errors import PathError
from k2lsp.runs import gitcmd
from k2lsp.runs.workspace import DEFAULT_SECRET_GLOBS, Workspace

# Files a run's tools and tests leave behind that never belong in its change set.
RUN_LITTER = (
    "__pycache__/**",
    "*.pyc",
    "*.pyo",
    ".pytest_cache/**",
    ".mypy_cache/**",
    ".ruff_cache/**",
    ".coverage",
    ".coverage.*",
    ".hypothesis/**",
)
# Skipped when copying a folder that is not a git repository (heavy, machine-specific).
NON_GIT_EXCLUDES = (
    ".venv/",
    "venv/",
    "node_modules/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    ".git/",
)


def snapshot_git(top: Path, src: Path, overlay: dict[str, str], run_dir: Path) -> str:
    """Commit the user's current state without touching their index, HEAD or refs."""
    head = gitcmd.rev(top, "HEAD^{commit}")
    seed = Path(gitcmd.out(top, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    with gitcmd.temp_index(seed, run_dir) as env:
        tree = gitcmd.snapshot_tree(top, env, exclude=DEFAULT_SECRET_GLOBS)
        overlay = {k: v for k, v in overlay.items() if not Workspace(src).is_secret(k)}
        if overlay:
            tree = add_overlay(top, src, overlay, env)
    if head and tree == gitcmd.rev(top, f"{head}^{{tree}}"):
        return head
    return gitcmd.commit_tree(
        top, tree, [head] if head else [], "k2lsp snapshot: working tree at the start of a run\n"
    )


def snapshot_nongit(src: Path, git_dir: Path, overlay: dict[str, str]) -> str:
    """Commit a plain folder into the run's private repository."""
    gd = ["--git-dir", str(git_dir), "--work-tree", str(src)]
    with gitcmd.temp_index(None, git_dir) as env:
        gitcmd.run(src, *gd, "add", "-A", "--ignore-errors", ".", env=env, ok_codes=(0, 1))
        tree = gitcmd.out(src, *gd, "write-tree", env=env)
        if overlay:
            tree = add_overlay(src, src, overlay, env, gd)
        return gitcmd.commit_tree(git_dir, tree, [], "k2lsp snapshot of a folder\n")


def add_overlay(
    top: Path, src: Path, overlay: dict[str, str], env: dict[str, str], gd: list[str] | None = None
) -> str:
    """Hash unsaved editor buffers into the temporary index; return the new tree."""
    ws = Workspace(src)
    gd = gd or []
    for rel_in, text in sorted(overlay.items()):
        abs_path = ws.resolve(rel_in)
        if abs_path == ws.root or abs_path.is_dir():
            raise PathError(f"unsaved buffer {rel_in!r} names a folder, not a file")
        repo_rel = abs_path.relative_to(top).as_posix()
        sha = gitcmd.out(
            top,
            *gd,
            "hash-object",
            "-w",
            "--stdin",
            f"--path={repo_rel}",
            env=env,
            input=text.encode("utf-8"),
        )
        mode = "100755" if abs_path.is_file() and os.access(abs_path, os.X_OK) else "100644"
        gitcmd.run(
            top, *gd, "update-index", "--add", "--cacheinfo", f"{mode},{sha},{repo_rel}", env=env
        )
    return gitcmd.out(top, *gd, "write-tree", env=env)


class RawEntry(NamedTuple):
    """One line of `git diff-tree -r -z` raw output."""

    old_mode: str
    new_mode: str
    status: str
    old_path: str
    new_path: str


ABSENT = "000000"


def parse_raw(raw: bytes) -> list[RawEntry]:
    """Entries of `git diff-tree -r -z` raw output (renames carry both paths)."""
    parts = raw.split(b"\0")
    out: list[RawEntry] = []
    i = 0
    while i < len(parts) and parts[i]:
        old_mode, new_mode, _old, _new, status = parts[i].decode().lstrip(":").split(" ")[:5]
        path_a = os.fsdecode(parts[i + 1])
        if status[:1] in ("R", "C"):
            path_b = os.fsdecode(parts[i + 2])
            i += 3
        else:
            path_b = path_a
            i += 2
        out.append(RawEntry(old_mode, new_mode, status, path_a, path_b))
    return out
