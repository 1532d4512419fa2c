"""Structure-aware text edits: find a definition by name, replace it, insert code next to it.

Pure functions on LF text; the tools in `k2lsp.tools.symbols` add paths, the gate and writes.

Replacement rule (shown to the model in the tool description): the definition's range runs
from its decorators / `export` / `template<...>` / attributes to its end. If the new code does
not start with such a prefix the old one is kept, so sending just `def f(...)` keeps `@cache`.
Leading comments are kept unless the new code itself starts with a comment, which then
replaces them. Code given dedented (or copied at the definition's own indentation) is fitted
to the definition's indentation.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import TYPE_CHECKING

from k2lsp.code.parse import parse
from k2lsp.code.symbols import Symbol, symbols_of

if TYPE_CHECKING:
    from tree_sitter import Node

_PREFIX_STARTS = ("@", "export", "template", "#[", "declare")
_COMMENT_STARTS = {"python": ("#",), "default": ("//", "/*")}
_STRINGISH = (
    "string",
    "template_string",
    "raw_string_literal",
    "string_literal",
    "interpreted_string_literal",
)


class LookupFailure(Exception):
    """The symbol is missing or ambiguous; the message lists candidates and locations."""


def find_definition(symbols: list[Symbol], query: str, rel: str) -> Symbol:
    """The one definition `query` names (`f`, `A.m`, `A.m@LINE`); LookupFailure lists candidates."""
    query = query.strip()
    name, _, line_part = query.partition("@")
    line = int(line_part) if line_part.strip().isdigit() else None
    exact = [s for s in symbols if s.qualname == name]
    found = exact or [s for s in symbols if s.name == name or s.qualname.endswith("." + name)]
    if line is not None:
        found = [s for s in found if s.start_line <= line <= s.end_line]
        found = [s for s in found if s.start_line == line] or found[-1:]
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookupFailure(_missing_message(symbols, name, rel))
    listing = "; ".join(
        f"{s.qualname}@{s.start_line} ({s.kind} `{s.signature}`)" for s in found[:20]
    )
    raise LookupFailure(
        f"{query!r} matches {len(found)} definitions in {rel}: {listing}. "
        f"Say which one with NAME@LINE, e.g. {found[0].qualname}@{found[0].start_line}."
    )


def _missing_message(symbols: list[Symbol], name: str, rel: str) -> str:
    if not symbols:
        return f"no definition named {name!r} in {rel}: it defines nothing the parser recognises."
    quals = sorted({s.qualname for s in symbols})
    close = difflib.get_close_matches(name, quals, n=5, cutoff=0.5)
    listing = ", ".join(f"{s.qualname}@{s.start_line}" for s in symbols[:40])
    more = f" (and {len(symbols) - 40} more)" if len(symbols) > 40 else ""
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"no definition named {name!r} in {rel}.{hint} Definitions there: {listing}{more}."


def _line_start(data: bytes, pos: int) -> int:
    return data.rfind(b"\n", 0, pos) + 1


def indent_at(data: bytes, pos: int) -> tuple[str, bool]:
    """(whitespace at the start of the line holding `pos`, is `pos` the first token on its line)."""
    start = _line_start(data, pos)
    before = data[start:pos].decode("utf-8", "replace")
    ws = before[: len(before) - len(before.lstrip(" \t"))]
    return ws, before.strip() == ""


_PY_BLOCKS = frozenset(
    {
        "module",
        "block",
        "function_definition",
        "class_definition",
        "decorated_definition",
        "if_statement",
        "elif_clause",
        "else_clause",
        "for_statement",
        "while_statement",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "with_statement",
        "match_statement",
        "case_clause",
        "ERROR",
    }
)


def line_roles(lang: str, code: str) -> tuple[set[int], set[int]]:
    """0-based indexes of (lines starting inside a multi-line string, Python continuation lines).

    String interiors are never re-indented. A continuation line (inside brackets, after a
    backslash) may sit anywhere, even left of its block, so it never sets a margin.
    """
    if "\n" not in code:
        return set(), set()
    tree = parse(lang, code.encode("utf-8", "surrogatepass"))
    strings: set[int] = set()
    cont: set[int] = set()
    stack: list[Node] = [tree.root_node]
    while stack:
        node = stack.pop()
        first, last = node.start_point[0], node.end_point[0]
        if first == last:
            continue
        if any(k in node.type for k in _STRINGISH):
            strings.update(range(first + 1, last + 1))
            continue
        if lang == "python" and node.type not in _PY_BLOCKS:
            cont.update(range(first + 1, last + 1))
        stack.extend(node.children)
    return strings, cont - strings


def protected_lines(lang: str, code: str) -> set[int]:
    """0-based indexes of lines that start inside a multi-line string (never re-indented)."""
    return line_roles(lang, code)[0]


def _loose(lang: str, lines: list[str], cont: set[int]) -> set[int]:
    """Lines whose indentation says nothing about the block's: comments and continuations."""
    return cont | {i for i, x in enumerate(lines) if _is_comment(lang, x)}


def _width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def reindent(
    lines: list[str],
    protected: set[int],
    base: str,
    target: str,
    skip_first: bool,
    keep: frozenset[int] = frozenset(),
) -> list[str]:
    """Replace leading `base` by `target` on every line that is not blank, protected or kept."""
    out = []
    for i, line in enumerate(lines):
        if i in protected or i in keep or not line.strip():
            out.append(line if i in protected or i in keep else "")
            continue
        body = line[len(base) :] if line.startswith(base) else line.lstrip(" \t")
        out.append(body if (i == 0 and skip_first) else target + body)
    return out


def _outdented(lines: list[str], base: str, protected: set[int], loose: set[int]) -> frozenset[int]:
    """Loose lines left of the block's margin (commented-out code at column 0): kept as is."""
    return frozenset(
        i
        for i, x in enumerate(lines)
        if i in loose and i not in protected and x.strip() and not x.startswith(base)
    )


def _spaces_only(lines: list[str], protected: set[int]) -> bool:
    """No line of the code is indented with a tab (so it may be converted to a tab file's style)."""
    return not any(x.startswith("\t") for i, x in enumerate(lines) if i not in protected)


def _tabify(lines: list[str], protected: set[int]) -> list[str]:
    """Space indentation -> tabs (one tab per indent unit) for files indented with tabs."""
    widths = [
        _width(x)
        for i, x in enumerate(lines)
        if x.strip() and i not in protected and x.startswith(" ")
    ]
    unit = min((w for w in widths if w > 0), default=0)
    if not unit:
        return lines
    out = []
    for i, line in enumerate(lines):
        width = _width(line)
        if i in protected or not line.startswith(" ") or line[:width].strip(" "):
            out.append(line)
        else:
            out.append("\t" * (width // unit) + " " * (width % unit) + line[width:])
    return out


def clean_code(code: str) -> str:
    """Code with LF endings and no leading/trailing blank lines.

    Interior lines are kept byte for byte (trailing spaces may be string content).
    """
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        lines[-1] = lines[-1].rstrip()
    return "\n".join(lines)


def _is_comment(lang: str, line: str) -> bool:
    return line.lstrip(" \t").startswith(_COMMENT_STARTS.get(lang, _COMMENT_STARTS["default"]))


def _shared_lines(candidate: str, old: str) -> int:
    """How many lines of `candidate` (after the first) appear verbatim in `old`."""
    pool = Counter(old.split("\n")[1:])
    hits = 0
    for line in candidate.split("\n")[1:]:
        if line.strip() and pool[line] > 0:
            pool[line] -= 1
            hits += 1
    return hits


def placements(lang: str, code: str, target: str, old: str | None = None) -> list[str]:
    """Candidate texts of `code` for where a definition indented by `target` starts, best first.

    The first line goes right after the existing indentation; the others get full indentation.
    `old` (the text being replaced, from the same start) breaks ties: code copied from the file
    keeps its layout byte for byte, whatever its comments and continuation lines look like.
    """
    lines = code.split("\n")
    protected, cont = line_roles(lang, code)
    loose = _loose(lang, lines, cont)
    first_ws = lines[0][: _width(lines[0])]
    verbatim = "\n".join([lines[0][len(first_ws) :], *lines[1:]])
    if old is not None and verbatim == old:
        return [verbatim]
    if "\t" in target and _spaces_only(lines, protected):
        lines = _tabify(lines, protected)
        first_ws = lines[0][: _width(lines[0])]
    as_placed = "\n".join([lines[0][len(first_ws) :], *lines[1:]])
    keep = _outdented(lines, first_ws, protected, loose)
    shifted = "\n".join(reindent(lines, protected, first_ws, target, True, keep))
    if first_ws == target:
        order = [as_placed]
    elif first_ws:
        order = [shifted]
    else:
        rest = [
            _width(x)
            for i, x in enumerate(lines[1:], 1)
            if x.strip() and i not in protected and i not in loose
        ]
        placed_first = bool(rest) and min(rest) >= len(target)
        order = [as_placed, shifted] if placed_first else [shifted, as_placed]
        if lang == "python":  # indentation is syntax: keep the readings Python accepts, in order
            valid = [c for c in order if _python_ok(c, target, protected)]
            order = valid + [c for c in order if c not in valid]
    if old is not None and verbatim not in order[:1]:
        best = _shared_lines(order[0], old)
        if _shared_lines(verbatim, old) > best:
            order = [verbatim, *[c for c in order if c != verbatim]]
    return order


def _python_ok(candidate: str, target: str, protected: set[int]) -> bool:
    """Does `candidate`, placed after `target` indentation, parse as Python on its own?"""
    import ast

    lines = candidate.split("\n")
    out = [lines[0]]
    for i, line in enumerate(lines[1:], 1):
        out.append(line[len(target) :] if i not in protected and line.startswith(target) else line)
    try:
        ast.parse("\n".join(out) + "\n")
    except (SyntaxError, ValueError):
        return False
    return True


def _starts_with_comment(lang: str, code: str) -> bool:
    starts = _COMMENT_STARTS.get(lang, _COMMENT_STARTS["default"])
    return code.lstrip().startswith(starts)


def replace_definitions(lang: str, text: str, sym: Symbol, code: str) -> list[str]:
    """Candidate new texts of the file with `sym` replaced by `code`, best first."""
    data = text.encode("utf-8", "surrogatepass")
    code = clean_code(code)
    stripped = code.lstrip()
    start = sym.start_byte
    if _starts_with_comment(lang, code) and sym.lead_byte < start:
        start = sym.lead_byte
    elif not stripped.startswith(_PREFIX_STARTS) and sym.core_byte > start:
        start = sym.core_byte
    target, first_on_line = indent_at(data, start)
    if not first_on_line:
        options = [stripped]
    else:
        old = data[start : sym.end_byte].decode("utf-8", "surrogatepass")
        options = placements(lang, code, target, old)
    head, tail = (
        data[:start].decode("utf-8", "surrogatepass"),
        data[sym.end_byte :].decode("utf-8", "surrogatepass"),
    )
    return [head + option + tail for option in options]


def resolve_in_text(lang: str, text: str, query: str, rel: str) -> Symbol:
    """Find the definition `query` names in `text` (parsed once; a cached tree is reused)."""
    return find_definition(symbols_of(lang, text.encode("utf-8", "surrogatepass")), query, rel)


def block(lang: str, code: str, target: str) -> str:
    """`code` dedented and indented to `target` as whole lines, ending with a newline.

    The margin is that of the code lines; comments left of it keep their column.
    """
    lines = code.split("\n")
    protected, cont = line_roles(lang, code)
    loose = _loose(lang, lines, cont)
    body = [i for i, x in enumerate(lines) if x.strip() and i not in protected]
    code_lines = [i for i in body if i not in loose] or body
    margin = min((_width(lines[i]) for i in code_lines), default=0)
    base = lines[code_lines[0]][:margin] if code_lines else ""
    if base == target:  # already placed: every byte as given
        return code + "\n"
    keep = _outdented(lines, base, protected, loose)
    if "\t" in target and _spaces_only(lines, protected):
        lines = _tabify(reindent(lines, protected, base, "", False, keep), protected)
        base = ""
    return "\n".join(reindent(lines, protected, base, target, False, keep)) + "\n"


def insert_text(lang: str, text: str, code: str, anchor: Symbol | None, after: bool) -> str:
    """The file text with `code` inserted after/before `anchor` (or at the end when None)."""
    code = clean_code(code)
    data = text.encode("utf-8", "surrogatepass")
    blank = "\n" * (2 if lang == "python" and (anchor is None or anchor.depth == 0) else 1)
    if anchor is None:
        body = text if not text or text.endswith("\n") else text + "\n"
        trailing = len(body) - len(body.rstrip("\n")) - 1 if body.strip() else 0
        sep = "\n" * max(0, len(blank) - trailing) if body.strip() else ""
        return body + sep + block(lang, code, "")
    target, _first = indent_at(data, anchor.start_byte)
    chunk = block(lang, code, target)
    if after:
        pos = data.find(b"\n", anchor.end_byte)
        pos = len(data) if pos < 0 else pos + 1
        head = data[:pos].decode("utf-8", "surrogatepass")
        tail = data[pos:].decode("utf-8", "surrogatepass")
        if not head.endswith("\n"):
            head += "\n"
        next_line = tail.split("\n", 1)[0]
        # Separate from a following sibling, not from a closing brace or a dedent.
        after_sep = blank if next_line.strip() and _width(next_line) >= len(target) else ""
        return head + blank + chunk + after_sep + tail
    pos = _line_start(data, anchor.lead_byte)
    head = data[:pos].decode("utf-8", "surrogatepass")
    tail = data[pos:].decode("utf-8", "surrogatepass")
    return head + chunk + blank + tail
