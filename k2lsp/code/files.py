"""Which files of a repository the code tools look at.

In a git repository: tracked plus untracked-but-not-ignored files (`git ls-files`). Elsewhere a
directory walk that skips hidden folders and the usual build/dependency folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from k2lsp.code.languages import EXTENSIONS

SKIP_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "venv",
        "env",
        "build",
        "dist",
        "target",
        "out",
        "site-packages",
        "vendor",
        "third_party",
    }
)


def _is_source(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in EXTENSIONS


def _git_files(root: Path) -> list[str] | None:
    from k2lsp import gitcmd

    if not (root / ".git").exists() and gitcmd.run_copy_git(root) is None:
        return None
    args = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    try:
        proc = gitcmd.run(root, *args, check=False)
    except gitcmd.GitError:
        return None
    if proc.returncode != 0:
        return None
    names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return sorted({n for n in names if n and _is_source(n.rsplit("/", 1)[-1])})


def _walk_files(root: Path) -> list[str]:
    out: list[str] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(root / rel_dir if rel_dir else root))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if name not in SKIP_DIRS:
                        stack.append(rel)
                elif entry.is_file(follow_symlinks=False) and _is_source(name):
                    out.append(rel)
            except OSError:
                continue
    return sorted(out)


def list_source_files(root: Path) -> list[str]:
    """Workspace-relative posix paths of every file a grammar covers, sorted."""
    root = Path(root)
    found = _git_files(root)
    return found if found is not None else _walk_files(root)
