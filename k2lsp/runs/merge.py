"""Three-way merges of text and bytes: what delivery and the editor landing use on a conflict."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.runs import gitcmd

if TYPE_CHECKING:
    pass


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
