"""Find test functions with tree-sitter: pytest, unittest, jest/vitest, go test, cargo test.

`find_tests(path, text)` lists the tests of one document; `enclosing_test(path, text, line)`
gives the one enclosing a 0-based line. A cheap text pre-check skips parsing files with no
test marker, so code actions on ordinary files never pay for a parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node, Tree

# A file can only hold tests when one of these appears in it.
_MARKERS = {
    "python": re.compile(r"\bdef test|TestCase\b"),
    "javascript": re.compile(r"\b(?:it|test)(?:\.\w+)?\s*\("),
    "typescript": re.compile(r"\b(?:it|test)(?:\.\w+)?\s*\("),
    "tsx": re.compile(r"\b(?:it|test)(?:\.\w+)?\s*\("),
    "go": re.compile(r"\bfunc Test"),
    "rust": re.compile(r"#\[(?:[\w:]+::)?test\b"),
}
_JS_TEST_CALLS = {"it", "test"}
_JS_GROUP_CALLS = {"describe", "suite", "context"}


@dataclass(frozen=True)
class DetectedTest:
    """One test: its runnable name, framework and 0-based line span (inclusive)."""

    name: str  # pytest/unittest "Class.test_x" or "test_x"; js "group name > test"; go/cargo id
    framework: str  # pytest | unittest | jest | vitest | go | cargo
    start_line: int
    end_line: int


def find_tests(path: str, text: str) -> list[DetectedTest]:
    """Every test function of a document (empty for unsupported languages)."""
    return detect(path, text)[0]


def detect(
    path: str, text: str, previous: tuple[Tree, bytes] | None = None
) -> tuple[list[DetectedTest], Tree | None, bytes]:
    """(tests, tree, bytes) of a document; `previous` (an older tree and its bytes) makes the
    parse incremental, which keeps re-detection after a small edit cheap."""
    from k2lsp.code.languages import get_parser, language_for

    lang = language_for(path)
    marker = _MARKERS.get(lang or "")
    data = text.encode("utf-8")
    if lang is None or marker is None or not marker.search(text):
        return [], None, data
    old_tree = _edited(previous, data) if previous is not None else None
    tree = get_parser(lang).parse(data, old_tree) if old_tree else get_parser(lang).parse(data)
    return _tests_in(tree.root_node, lang, path, text), tree, data


def _edited(previous: tuple[Tree, bytes], new: bytes) -> Tree:
    """A copy of the old tree told about the single changed span between its bytes and `new`."""
    tree, old = previous
    start = _common_prefix(old, new)
    limit = min(len(old), len(new)) - start
    tail = _common_prefix(old[::-1][:limit], new[::-1][:limit])
    old_end, new_end = len(old) - tail, len(new) - tail
    copy = tree.copy()
    copy.edit(start, old_end, new_end, _point(old, start), _point(old, old_end),
              _point(new, new_end))  # fmt: skip
    return copy


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix (binary search over C-speed slice compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(data: bytes, offset: int) -> tuple[int, int]:
    row = data.count(b"\n", 0, offset)
    return row, offset - (data.rfind(b"\n", 0, offset) + 1)


def _tests_in(root: Node, lang: str, path: str, text: str) -> list[DetectedTest]:
    if lang == "python":
        return _python(root, path)
    if lang == "go":
        return _go(root) if path.endswith("_test.go") else []
    if lang == "rust":
        return _rust(root, [])
    framework = "vitest" if re.search(r"from\s+['\"]vitest['\"]", text) else "jest"
    return _js(root, [], framework)


def enclosing_test(path: str, text: str, line: int) -> DetectedTest | None:
    """The innermost test enclosing 0-based `line`, or None."""
    found = [t for t in find_tests(path, text) if t.start_line <= line <= t.end_line]
    return min(found, key=lambda t: t.end_line - t.start_line) if found else None


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text else ""


def _span(node: Node) -> tuple[int, int]:
    return node.start_point[0], node.end_point[0]


def _python(root: Node, path: str) -> list[DetectedTest]:
    out: list[DetectedTest] = []
    test_module = re.search(r"(^|/)(test_[^/]*|[^/]*_test)\.py$", path) is not None
    for node in root.children:
        decorated = node
        if node.type == "decorated_definition":
            node = node.child_by_field_name("definition") or node
        if node.type == "function_definition":
            name = _text(node.child_by_field_name("name"))
            if name.startswith("test"):
                out.append(DetectedTest(name, "pytest", *_span(decorated)))
        elif node.type == "class_definition":
            out.extend(_python_class(node, test_module))
    return out


def _python_class(node: Node, test_module: bool) -> list[DetectedTest]:
    cls = _text(node.child_by_field_name("name"))
    bases = _text(node.child_by_field_name("superclasses"))
    unittest = "TestCase" in bases
    if not unittest and not cls.startswith("Test"):
        return []
    body = node.child_by_field_name("body")
    out: list[DetectedTest] = []
    for child in body.children if body is not None else []:
        decorated = child
        if child.type == "decorated_definition":
            child = child.child_by_field_name("definition") or child
        if child.type != "function_definition":
            continue
        name = _text(child.child_by_field_name("name"))
        if name.startswith("test"):
            framework = "unittest" if unittest else "pytest"
            out.append(DetectedTest(f"{cls}.{name}", framework, *_span(decorated)))
    return out


def _go(root: Node) -> list[DetectedTest]:
    out: list[DetectedTest] = []
    for node in root.children:
        if node.type != "function_declaration":
            continue
        name = _text(node.child_by_field_name("name"))
        params = _text(node.child_by_field_name("parameters"))
        if re.fullmatch(r"Test([^a-z].*)?", name) and "testing.T" in params:
            out.append(DetectedTest(name, "go", *_span(node)))
    return out


def _rust(node: Node, mods: list[str]) -> list[DetectedTest]:
    out: list[DetectedTest] = []
    test_attr = False
    start: int | None = None
    for child in node.children:
        if child.type == "attribute_item":
            if re.fullmatch(r"#\[(?:[\w:]+::)?test\]", _text(child).replace(" ", "")):
                test_attr = True
                start = child.start_point[0] if start is None else start
            continue
        if child.type == "function_item" and test_attr:
            name = "::".join([*mods, _text(child.child_by_field_name("name"))])
            first = start if start is not None else child.start_point[0]
            out.append(DetectedTest(name, "cargo", first, child.end_point[0]))
        elif child.type == "mod_item":
            body = child.child_by_field_name("body")
            if body is not None:
                out.extend(_rust(body, [*mods, _text(child.child_by_field_name("name"))]))
        if child.type not in ("line_comment", "block_comment"):
            test_attr, start = False, None
    return out


def _js(node: Node, groups: list[str], framework: str) -> list[DetectedTest]:
    out: list[DetectedTest] = []
    stack: list[tuple[Node, list[str]]] = [(node, groups)]
    while stack:
        current, names = stack.pop()
        for child in reversed(current.children):
            call = _js_call(child)
            if call is None:
                if child.type in (
                    "expression_statement",
                    "program",
                    "statement_block",
                    "export_statement",
                ):
                    stack.append((child, names))
                continue
            callee, title, body = call
            if callee in _JS_TEST_CALLS:
                full = " > ".join([*names, title]) if names else title
                out.append(DetectedTest(full, framework, *_span(child)))
            elif callee in _JS_GROUP_CALLS and body is not None:
                stack.append((body, [*names, title]))
    out.sort(key=lambda t: t.start_line)
    return out


def _js_call(node: Node) -> tuple[str, str, Node | None] | None:
    """(callee base name, title, callback body) for `it("x", () => {...})`-like calls."""
    if node.type == "expression_statement" and node.named_child_count == 1:
        node = node.named_children[0]
    if node.type != "call_expression":
        return None
    fn = node.child_by_field_name("function")
    callee = _text(fn).split(".")[0]
    if callee not in _JS_TEST_CALLS | _JS_GROUP_CALLS:
        return None
    args = node.child_by_field_name("arguments")
    named = args.named_children if args is not None else []
    if not named or named[0].type not in ("string", "template_string"):
        return None
    title = _text(named[0])[1:-1]
    body = None
    for arg in named[1:]:
        if arg.type in ("arrow_function", "function_expression", "function"):
            body = arg.child_by_field_name("body")
    return callee, title, body
