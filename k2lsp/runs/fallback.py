"""File operations done on disk for an editor that cannot do them itself (clients without
`workspace/applyEdit` resource operations create, delete and rename files this way), and the
path checks every editor delivery makes: a path leading out of the workspace, ending in a
symlink, or under a file where a folder is needed is refused, never written through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from k2lsp.errors import PathError
from k2lsp.runs.workspace import Workspace


def entry(ws: Workspace, rel: str) -> Path:
    """The confined path of `rel`; PathError if it is a symlink or a file blocks its folder."""
    path = ws.resolve_entry(rel)
    if path.is_symlink():
        raise PathError(f"{rel} is a symlink in your folder; k2lsp does not write through links")
    for folder in path.parents:
        if folder == ws.root or not folder.is_relative_to(ws.root):
            break
        if os.path.lexists(folder) and not folder.is_dir():
            raise PathError(
                f"your folder has a file at {ws.rel(folder)} where {rel} needs a folder"
            )
    return path


def check_disk(
    root: Path,
    writes: Mapping[str, str | None],
    expected: Mapping[str, str | None] | None = None,
) -> list[tuple[Path, str | None]]:
    """The confined targets of `write_disk`, or PathError (nothing written) naming why not.

    A create (text) needs an absent path: an existing file, folder or link is never replaced.
    A delete needs a regular file that still holds `expected[rel]` (when given), or nothing.
    """
    ws = Workspace(root)
    targets: list[tuple[Path, str | None]] = []
    for rel, text in writes.items():
        path = entry(ws, rel)
        if text is not None and path.exists():
            raise PathError(f"{rel} already exists in your folder; k2lsp will not overwrite it")
        if text is None and path.exists():
            if not path.is_file():
                raise PathError(f"{rel} is not a regular file; k2lsp will not delete it")
            if expected is not None and rel in expected:
                want = expected[rel]
                if want is None or path.read_bytes() != want.encode("utf-8"):
                    raise PathError(f"{rel} changed on disk; k2lsp will not delete it")
        targets.append((path, text))
    return targets


def write_disk(
    root: Path,
    writes: Mapping[str, str | None],
    expected: Mapping[str, str | None] | None = None,
) -> None:
    """Apply fallback file operations (files the editor could not create/delete itself).

    Every path is checked first (`check_disk`); a create never replaces an existing file, even
    one that appeared since the check (exclusive create).
    """
    for path, text in check_disk(root, writes, expected):
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise PathError(f"{path} appeared meanwhile; k2lsp did not overwrite it") from None
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
