"""Positions and edits between k2lsp (1-based lines, columns in characters) and LSP (0-based
lines, columns in UTF-16 code units), and URIs confined to the workspace."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from k2lsp.errors import PathError


@dataclass(frozen=True, order=True)
class Site:
    """One occurrence of a symbol: file (relative posix), 1-based line and character column,
    and the identifier's length in characters."""

    path: str
    line: int
    column: int
    length: int = 0

    def key(self) -> tuple[str, int, int]:
        """(path, line, column) for set comparisons."""
        return (self.path, self.line, self.column)


@dataclass(frozen=True)
class TextEdit:
    """Replace characters [start, end) of one file with `new_text` (offsets in characters)."""

    start: int
    end: int
    new_text: str


def uri_of(path: Path) -> str:
    """file:// URI of an absolute path."""
    return "file://" + quote(path.as_posix())


def rel_of_uri(uri: str, root: Path) -> str:
    """The root-relative posix path of a file URI, or PathError when it is not under root."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise PathError(f"not a file URI: {uri[:200]}")
    path = Path(unquote(parts.path))
    if ".." in path.parts:
        raise PathError(f"URI escapes the workspace: {uri[:200]}")
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise PathError(f"URI outside the workspace: {uri[:200]}") from None


def _line_starts(text: str) -> list[int]:
    starts = [0]
    idx = text.find("\n")
    while idx >= 0:
        starts.append(idx + 1)
        idx = text.find("\n", idx + 1)
    return starts


def utf16_col(line_text: str, chars: int) -> int:
    """UTF-16 code units of the first `chars` characters of a line."""
    head = line_text[:chars]
    return len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)


def char_col(line_text: str, units: int) -> int:
    """Characters covering `units` UTF-16 code units of a line (clamped to the line)."""
    count = 0
    for i, ch in enumerate(line_text):
        if count >= units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(line_text)


class Lines:
    """A text with fast LSP position <-> character offset conversion."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = _line_starts(text)

    def line(self, index: int) -> str:
        """Line `index` (0-based) without its newline."""
        if index >= len(self.starts):
            return ""
        start = self.starts[index]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)]

    def offset(self, pos: dict[str, int]) -> int:
        """Character offset of an LSP position (clamped to the text)."""
        line = int(pos.get("line", 0))
        if line >= len(self.starts):
            return len(self.text)
        line = max(line, 0)
        return self.starts[line] + char_col(self.line(line), int(pos.get("character", 0)))

    def position(self, line: int, column: int) -> dict[str, int]:
        """LSP position of 1-based `line` and 1-based character `column`."""
        return {"line": line - 1, "character": utf16_col(self.line(line - 1), column - 1)}

    def site(self, rel: str, pos: dict[str, int], length: int = 0) -> Site:
        """The Site (1-based) of an LSP position."""
        line = int(pos.get("line", 0))
        col = char_col(self.line(line), int(pos.get("character", 0)))
        return Site(rel, line + 1, col + 1, length)


def lsp_edits(lines: Lines, raw: list[dict[str, object]]) -> list[TextEdit]:
    """LSP TextEdits as character-offset edits, checked not to overlap."""
    out: list[TextEdit] = []
    for edit in raw:
        rng = edit.get("range")
        if not isinstance(rng, dict):
            raise ValueError("a text edit without a range")
        out.append(
            TextEdit(
                lines.offset(rng.get("start") or {}),
                lines.offset(rng.get("end") or {}),
                str(edit.get("newText", "")),
            )
        )
    return check_edits(out)


def check_edits(edits: list[TextEdit]) -> list[TextEdit]:
    """Edits sorted by position; ValueError when two overlap or one is reversed."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    for a, b in itertools.pairwise(ordered):
        if b.start < a.end:
            raise ValueError("overlapping edits")
    if any(e.end < e.start for e in ordered):
        raise ValueError("an edit ends before it starts")
    return ordered


def apply_edits(text: str, edits: list[TextEdit]) -> str:
    """`text` with non-overlapping `edits` applied."""
    out: list[str] = []
    pos = 0
    for edit in check_edits(edits):
        out.append(text[pos : edit.start])
        out.append(edit.new_text)
        pos = edit.end
    out.append(text[pos:])
    return "".join(out)
