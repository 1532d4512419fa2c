"""Parsing helpers: parse text with the right grammar and list its syntax errors.

Every tree-sitter parse of `k2lsp.code` and the tools goes through `parse` (the server's test
detection parses incrementally with its own parser). An edit parses a file's text
through `parse_cached`, which keeps the last few trees keyed by language and content hash: the
tree of the text a tool wrote serves the syntax gate, the next edit's symbol lookup (its old
text) and the repo map's refresh of that file, so an edit parses each text once.
`count_parses` lets tests and bench/ see how many parses a piece of work did.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k2lsp.code.languages import get_parser

if TYPE_CHECKING:
    from tree_sitter import Node, Tree


@dataclass(frozen=True)
class SyntaxProblem:
    """One ERROR or MISSING node: 1-based line and column (characters), and what it is."""

    line: int
    column: int
    start_byte: int
    end_byte: int
    missing: str  # the missing token for MISSING nodes, "" for ERROR nodes

    def describe(self) -> str:
        """Short human text: 'missing ")"' or 'unexpected syntax'."""
        return f"missing {self.missing!r}" if self.missing else "unexpected syntax"


# Trees kept: the files being edited now. A tree takes ~40 times its text in memory, so the
# cache is bounded by the text it covers too; a bigger text is parsed but not kept.
_CACHE_TREES = 8
_CACHE_TEXT_BYTES = 1_000_000
# Per entry: the tree, the text's size, and what was derived from it (its symbols...).
_cache: OrderedDict[tuple[str, bytes], tuple[Tree, int, dict[str, Any]]] = OrderedDict()
_cached_bytes = 0
_lock = threading.Lock()


@dataclass
class ParseLog:
    """Parses seen by `count_parses`: one (language, content hash) per parse, in order."""

    parses: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many parses ran."""
        return len(self.parses)

    def of(self, data: bytes | str) -> int:
        """How many parses were of exactly this text."""
        key = content_key(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return sum(1 for _lang, digest in self.parses if digest == key)


_logs: list[ParseLog] = []


@contextmanager
def count_parses() -> Iterator[ParseLog]:
    """Record every parse (any thread) made while the block runs (for tests and bench/)."""
    log = ParseLog()
    with _lock:
        _logs.append(log)
    try:
        yield log
    finally:
        with _lock:
            _logs.remove(log)


def content_key(data: bytes) -> bytes:
    """The content hash trees are cached under."""
    return hashlib.blake2b(data, digest_size=16).digest()


def parse(lang: str, data: bytes) -> Tree:
    """Parse UTF-8 bytes with the grammar of `lang` (always a fresh parse)."""
    if _logs:
        key = content_key(data)
        with _lock:
            for log in _logs:
                log.parses.append((lang, key))
    return get_parser(lang).parse(data)


def parse_cached(lang: str, data: bytes) -> Tree:
    """The tree of `data`: the cached one when this exact text was parsed before, else a fresh
    parse that is kept for the next use (trees are only read, never edited in place)."""
    return parse_entry(lang, data)[0]


def parse_entry(lang: str, data: bytes) -> tuple[Tree, dict[str, Any]]:
    """`parse_cached`'s tree and the memo of values derived from this text (kept with the
    tree; a fresh dict when the text is too large to keep)."""
    global _cached_bytes
    key = (lang, content_key(data))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit[0], hit[2]
    tree = parse(lang, data)
    size = len(data)
    memo: dict[str, Any] = {}
    if size > _CACHE_TEXT_BYTES // 2:
        return tree, memo
    with _lock:
        if key in _cache:  # another thread parsed it meanwhile: share its entry
            return _cache[key][0], _cache[key][2]
        _cache[key] = (tree, size, memo)
        _cached_bytes += size
        while len(_cache) > _CACHE_TREES or _cached_bytes > _CACHE_TEXT_BYTES:
            _cached_bytes -= _cache.popitem(last=False)[1][1]
    return tree, memo


def forget_trees() -> None:
    """Empty the tree cache (tests and bench/ measure from a cold start)."""
    global _cached_bytes
    with _lock:
        _cache.clear()
        _cached_bytes = 0


def cached_tree(lang: str, data: bytes) -> Tree | None:
    """The cached tree of `data` if there is one (nothing is parsed or stored)."""
    hit = cached_entry(lang, data)
    return None if hit is None else hit[0]


def cached_entry(lang: str, data: bytes) -> tuple[Tree, dict[str, Any]] | None:
    """The cached tree of `data` and its memo, if there is one (nothing is parsed or stored)."""
    if not _cache or len(data) > _CACHE_TEXT_BYTES // 2:
        return None  # nothing kept, or never kept: no need to hash it (a cold repo map scan)
    key = (lang, content_key(data))
    with _lock:
        hit = _cache.get(key)
        return None if hit is None else (hit[0], hit[2])


def syntax_problems(tree: Tree, data: bytes) -> list[SyntaxProblem]:
    """Every ERROR and MISSING node, in document order (only subtrees with errors are walked)."""
    root = tree.root_node
    if not root.has_error:
        return []
    out: list[SyntaxProblem] = []
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            out.append(_problem(node, data))
        # Children with errors, pushed in reverse so they pop in document order.
        stack.extend(reversed([c for c in node.children if c.has_error or c.is_missing]))
    out.sort(key=lambda p: (p.start_byte, p.end_byte))
    return out


def _problem(node: Node, data: bytes) -> SyntaxProblem:
    row, col_bytes = node.start_point
    line_start = node.start_byte - col_bytes
    col = len(data[line_start : node.start_byte].decode("utf-8", "replace")) + 1
    missing = node.type if node.is_missing else ""
    return SyntaxProblem(row + 1, col, node.start_byte, node.end_byte, missing)


def line_text(data: bytes, line: int) -> str:
    """The text of 1-based line `line` (without its line ending)."""
    lines = data.split(b"\n")
    if not 1 <= line <= len(lines):
        return ""
    return lines[line - 1].rstrip(b"\r").decode("utf-8", "replace")
