"""The workspace a run works in: path confinement, ignore rules, safe file reading.

Every tool path goes through `Workspace.resolve`, which refuses `..` escapes, absolute paths
outside the root and symlinks pointing out of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from k2lsp.errors import PathError

# Files larger than this are refused by read-whole-file helpers (tools page them instead).
MAX_TEXT_BYTES = 8 * 1024 * 1024


@dataclass
class Workspace:
    """A confined folder. `root` is absolute and resolved."""

    root: Path
    # Unsaved editor buffers (relative posix path -> text) that override the disk content.
    overlay: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()

    def resolve(self, path: str | os.PathLike[str], *, must_exist: bool = False) -> Path:
        """Absolute path of `path` inside the workspace, or PathError saying why not."""
        raw = os.fspath(path)
        if "\x00" in raw:
            raise PathError(f"path {raw!r} contains a NUL byte")
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        # Resolve symlinks of existing parts; a not-yet-existing tail is resolved lexically.
        resolved = candidate.resolve(strict=False)
        if not _is_within(resolved, self.root):
            raise PathError(
                f"path {raw!r} is outside the workspace {self.root}; "
                "use a path relative to the workspace root"
            )
        if must_exist and not resolved.exists():
            raise PathError(f"{self.rel(resolved)} does not exist")
        return resolved

    def rel(self, path: Path) -> str:
        """Workspace-relative posix form of an absolute path inside the root."""
        try:
            rel = Path(path).resolve(strict=False).relative_to(self.root)
        except ValueError:
            rel = Path(os.path.relpath(path, self.root))
        text = rel.as_posix()
        return "." if text in ("", ".") else text

    def read_text(self, path: str | os.PathLike[str]) -> str:
        """Text of a workspace file (overlay first), refusing binary, non-UTF-8 and huge files."""
        abs_path = self.resolve(path, must_exist=False)
        rel = self.rel(abs_path)
        if rel in self.overlay:
            return self.overlay[rel]
        if not abs_path.exists():
            raise PathError(f"{rel} does not exist")
        if abs_path.is_dir():
            raise PathError(f"{rel} is a directory, not a file")
        size = abs_path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise PathError(f"{rel} is {size:,} bytes, over the {MAX_TEXT_BYTES:,}-byte limit for whole-file use")
        data = abs_path.read_bytes()
        return decode_text(data, rel)


def decode_text(data: bytes, label: str) -> str:
    """Decode UTF-8 text, or raise PathError naming binary / non-UTF-8 content."""
    if b"\x00" in data[:8192]:
        raise PathError(f"{label} is a binary file; it cannot be read or edited as text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PathError(
            f"{label} is not valid UTF-8 (byte {exc.start}); it cannot be edited as text"
        ) from None


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
