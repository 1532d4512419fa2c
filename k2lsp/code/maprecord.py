"""One file's analysis as the repo map keeps it: compact records, decoded on demand."""

from __future__ import annotations

import marshal
from sys import intern
from typing import Any

from k2lsp.code.cache import content_hash
from k2lsp.code.languages import language_for
from k2lsp.code.refs import identifier_votes
from k2lsp.code.symbols import symbols_of

# A file's analysis, kept compact: (symbol tuples, identifier votes, a note, per-symbol (own
# votes, prior), the defined names); all but the note and names are marshalled bytes decoded
# on demand. Stored in the `records` table; only a bounded few are held in memory.
Record = tuple[bytes, bytes, str, bytes, tuple[str, ...]]
_EMPTY = marshal.dumps(())


def rec_symbols(rec: Record) -> tuple[tuple[Any, ...], ...]:
    """The symbol tuples of a record (see `Symbol`)."""
    out: tuple[tuple[Any, ...], ...] = marshal.loads(rec[0])
    return out


def rec_votes(rec: Record) -> dict[str, int]:
    """Identifier -> votes of a record's file."""
    out: dict[str, int] = marshal.loads(rec[1]) if rec[1] != _EMPTY else {}
    return out


def rec_statics(rec: Record) -> tuple[tuple[int, float], ...]:
    """Per symbol: (the file's own votes for its name, its name prior)."""
    out: tuple[tuple[int, float], ...] = marshal.loads(rec[3])
    return out


def _record(syms: tuple[Any, ...], votes: dict[str, int], note: str, statics: tuple) -> Record:
    names = tuple(intern(t[0]) for t in syms)
    votes_blob = marshal.dumps(votes) if votes else _EMPTY
    return marshal.dumps(syms), votes_blob, note, marshal.dumps(statics), names


_MOD = 1 << 128
_DECODED_FILES = 512  # files whose symbols stay decoded (what a few renders show)
_RACY_NS = 2_000_000_000  # mtimes this close to the last check are re-hashed
_MAX_MAP_FILE_BYTES = 1_000_000
_CHARS_PER_TOKEN = 4
_RECORDS_KEPT = 256  # raw records kept in memory (the files one render or edit touches)
_BULK_FILES = 4000  # a cold build keeps totals of this many files in memory, then spills
_UNUSED_RECORDS = 4096  # records of contents no file has any more, kept for a switch back
MAX_FILES = (
    50_000  # a map of more files than this would take minutes to build; the rest is left out
)


def _pair_hash(rel: str, digest: str) -> int:
    return int(content_hash(f"{rel}\0{digest}".encode("utf-8", "surrogatepass")), 16)


def analyze(rel: str, data: bytes) -> Record:
    """Symbols and identifier votes of one file (a note instead when it cannot be read)."""
    return _analyze(rel, data)[0]


def _analyze(rel: str, data: bytes) -> tuple[Record, dict[str, int]]:
    """`analyze` and the identifier votes before marshalling."""
    lang = language_for(rel)
    if lang is None:
        return _record((), {}, "unsupported", ()), {}
    if b"\x00" in data[:8192]:
        return _record((), {}, "binary", ()), {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _record((), {}, "not UTF-8", ()), {}
    if len(data) > _MAX_MAP_FILE_BYTES:
        return _record((), {}, "too large", ()), {}
    from k2lsp.code.rank import name_prior

    # A file an editing tool just wrote was parsed by it: reuse that tree (and keep the symbols
    # with it for the next edit's lookup).
    symbols = symbols_of(lang, data, keep=False)
    # Identifier keys are not interned: the totals keep one copy of each name anyway.
    idents = identifier_votes(text)
    statics = tuple((idents.get(s.name, 0), name_prior(s.name, s.kind, s.depth)) for s in symbols)
    syms = tuple((intern(s.name), s.qualname, intern(s.kind), *s[3:]) for s in symbols)
    return _record(syms, idents, "", statics), idents
