"""Reading one page of lines out of a text file of any size in one bounded pass.

The file is read in 1 MiB chunks: only the requested lines are kept (each capped in length),
the rest is counted and checked to be UTF-8, so a 50 MB file costs a few hundred milliseconds
and a few MiB of memory whatever page is asked for.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import BinaryIO

from k2lsp.tools.base import ToolError

CHUNK = 1 << 20
LINE_CAP_BYTES = 2_000
BINARY_SNIFF = 8_192


@dataclass
class Page:
    """The lines of one page and what the whole file holds."""

    lines: list[tuple[int, str]] = field(default_factory=list)
    total_lines: int = 0
    cut_by_chars: bool = False  # stopped early because of the character cap


class _Collector:
    """Keeps the lines `start..end` (capped) until `char_cap` characters are gathered."""

    def __init__(self, start: int, end: int, char_cap: int) -> None:
        self.start, self.end, self.char_cap = start, end, char_cap
        self.page = Page()
        self.buf = bytearray()
        self.line_bytes = 0
        self.chars = 0
        self.full = False

    def wants(self, line_no: int) -> bool:
        return not self.full and self.start <= line_no <= self.end

    def add(self, piece: bytes) -> None:
        room = LINE_CAP_BYTES - len(self.buf)
        if room > 0:
            self.buf += piece[:room]
        self.line_bytes += len(piece)

    def finish(self, line_no: int) -> None:
        text = bytes(self.buf).decode("utf-8", "replace").rstrip("\r")
        if self.line_bytes > LINE_CAP_BYTES:
            text += f" … [line truncated: {self.line_bytes:,} bytes in all]"
        self.page.lines.append((line_no, text))
        self.buf.clear()
        self.line_bytes = 0
        self.chars += len(text) + 8
        if line_no >= self.end:
            self.full = True
        elif self.chars >= self.char_cap:
            self.full = self.page.cut_by_chars = True


def read_page(
    stream: BinaryIO, label: str, start: int, end: int, char_cap: int, chunk_size: int = CHUNK
) -> Page:
    """Lines `start..end` of `stream` (1-based, inclusive), at most about `char_cap` characters.

    Raises ToolError for binary or non-UTF-8 content (checked over the whole stream).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    col = _Collector(start, end, char_cap)
    line_no, offset, last = 1, 0, b""
    while chunk := stream.read(chunk_size):
        if offset == 0 and b"\x00" in chunk[:BINARY_SNIFF]:
            raise ToolError(
                f"{label} is a binary file; it cannot be read as text "
                "(read the source it is built from, or inspect it with run_command)"
            )
        _check_utf8(decoder, chunk, offset, label)
        newlines = chunk.count(b"\n")
        if col.full or line_no + newlines < start:
            line_no += newlines
        else:
            line_no = _scan(chunk, line_no, col)
        offset += len(chunk)
        last = chunk[-1:]
    _check_utf8(decoder, b"", offset, label, final=True)
    has_tail = offset > 0 and last != b"\n"
    if has_tail and col.wants(line_no):
        col.finish(line_no)
    col.page.total_lines = line_no if has_tail else line_no - 1
    return col.page


def _scan(chunk: bytes, line_no: int, col: _Collector) -> int:
    """Feed the lines of `chunk` to `col`; return the line number at the chunk's end."""
    pos = 0
    while True:
        nl = chunk.find(b"\n", pos)
        if col.wants(line_no):
            col.add(chunk[pos : nl if nl >= 0 else len(chunk)])
        if nl < 0:
            return line_no
        if col.wants(line_no):
            col.finish(line_no)
        line_no += 1
        pos = nl + 1
        if col.full:
            return line_no + chunk.count(b"\n", pos)


def _check_utf8(
    decoder: codecs.IncrementalDecoder, data: bytes, offset: int, label: str, final: bool = False
) -> None:
    try:
        decoder.decode(data, final)
    except UnicodeDecodeError as exc:
        where = offset + max(exc.start, 0)
        raise ToolError(
            f"{label} is not valid UTF-8 (near byte {where:,}); it cannot be read as text. "
            "Use search to find text in it, or run_command to convert it"
        ) from None
