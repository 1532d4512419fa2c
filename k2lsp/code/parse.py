"""Parsing helpers: parse text with the right grammar and list its syntax errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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


def parse(lang: str, data: bytes) -> Tree:
    """Parse UTF-8 bytes with the grammar of `lang`."""
    return get_parser(lang).parse(data)


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
