"""Tree-sitter name matching: the fallback when no language server is at hand. A site is an
identifier node whose text is the name (strings and comments do not count, unlike grep), in the
files ripgrep finds mentioning the word. It cannot tell two symbols of the same name apart."""

from __future__ import annotations

from pathlib import Path

from k2lsp.code.languages import language_for
from k2lsp.code.parse import parse_cached
from k2lsp.code.refs import grep_word
from k2lsp.errors import PathError
from k2lsp.fs import safefs
from k2lsp.lspc.text import Site

IDENTIFIER_TYPES = frozenset(
    {
        "identifier",
        "property_identifier",
        "shorthand_property_identifier",
        "shorthand_property_identifier_pattern",
        "type_identifier",
        "field_identifier",
        "namespace_identifier",
    }
)
MAX_FILES = 5000


def name_sites(root: Path, name: str, under: str = "") -> list[Site]:
    """Every identifier `name` in the source files under `under` (sorted)."""
    hits = grep_word(root, name, under, limit=200_000)
    files = sorted({rel for rel, _line, _text in hits})[:MAX_FILES]
    out: list[Site] = []
    for rel in files:
        try:
            with safefs.open_read(root, rel) as fh:
                text = fh.read().decode("utf-8")
        except (OSError, UnicodeDecodeError, PathError):
            continue
        out += file_sites(rel, text, name)
    return sorted(out)


def file_sites(rel: str, text: str, name: str) -> list[Site]:
    """Identifier nodes spelled `name` in one file's text."""
    lang = language_for(rel)
    if lang is None:
        return []
    data = text.encode("utf-8", "surrogatepass")
    tree = parse_cached(lang, data)
    want = name.encode("utf-8")
    out: list[Site] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in IDENTIFIER_TYPES:
            if data[node.start_byte : node.end_byte] == want:
                row, col_bytes = node.start_point
                line_start = data.rfind(b"\n", 0, node.start_byte) + 1
                col = len(data[line_start : line_start + col_bytes].decode("utf-8", "replace"))
                out.append(Site(rel, row + 1, col + 1, len(name)))
            continue
        if node.child_count:
            stack.extend(node.children)
    return sorted(out)
