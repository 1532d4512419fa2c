"""Three-way merges of text and bytes (the delivery planner's merge), and `holds`: does a text
contain a change (the editor landing's check that an applied edit really landed)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from k2lsp.runs import gitcmd


# ---- three-way merge -----------------------------------------------------------------------
def merge3(base: str, ours: str, theirs: str) -> tuple[str, bool]:
    """Merge `theirs` into `ours` from common `base` (git merge-file); (text, conflicted)."""
    data, conflicted = merge3_bytes(base.encode(), ours.encode(), theirs.encode())
    return data.decode("utf-8", "surrogateescape"), conflicted


def merge3_bytes(base: bytes, ours: bytes, theirs: bytes) -> tuple[bytes, bool]:
    """Byte form of `merge3`; conflicts are marked with <<<<<<< ours / >>>>>>> k2lsp."""
    with tempfile.TemporaryDirectory(prefix="k2lsp-merge-") as tmp:
        names = []
        for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / label
            path.write_bytes(data)
            names.append(str(path))
        proc = gitcmd.run(
            tmp,
            "merge-file",
            "-p",
            "-L",
            "yours",
            "-L",
            "start of run",
            "-L",
            "k2lsp",
            *names,
            check=False,
        )
    if proc.returncode < 0 or proc.returncode > 127:
        raise gitcmd.GitError("git merge-file failed: " + proc.stderr.decode("utf-8", "replace"))
    return proc.stdout, proc.returncode > 0


def holds(before: str | None, now: str | None, after: str | None) -> bool:
    """Does `now` contain the change `before` -> `after` (maybe with other edits around it)?"""
    if now == after:
        return True
    if before is None or now is None or after is None:
        return False
    if now == before:
        return False
    merged, conflicted = merge3(before, now, after)
    return not conflicted and merged == now
