"""The syntax gate: edits that add parse errors are refused with a location; others pass."""

from __future__ import annotations

import pytest

from k2lsp.code.gate import check_edit
from k2lsp.tools.base import ToolError

GOOD = {
    "a.py": "def f(x):\n    return x\n",
    "a.js": "export const f = (x) => x + 1;\n",
    "a.ts": "export function f(x: number): number { return x; }\n",
    "a.tsx": "export const A = () => <div>hi</div>;\n",
    "a.go": "package a\n\nfunc F(x int) int { return x }\n",
    "a.rs": "fn f(x: i32) -> i32 { x }\n",
    "A.java": "class A { int f(int x) { return x; } }\n",
    "a.c": "int f(int x) { return x; }\n",
    "a.cpp": "class A { public: int f(int x) { return x; } };\n",
}
BROKEN = {
    "a.py": "def f(x:\n    return x\n",
    "a.js": "export const f = (x => x + 1;\n",
    "a.ts": "export function f(x: number): number { return x; \n",
    "a.tsx": "export const A = () => <div>hi</div;\n",
    "a.go": "package a\n\nfunc F(x int int { return x }\n",
    "a.rs": "fn f(x: i32) -> i32 { x \n",
    "A.java": "class A { int f(int x) { return x; }\n",
    "a.c": "int f(int x) { return x; \n",
    "a.cpp": "class A { public: int f(int x) { return x; } \n",
}


@pytest.mark.parametrize("path", sorted(GOOD))
def test_good_edit_passes_in_every_language(path: str) -> None:
    check_edit(path, None, GOOD[path])
    check_edit(path, BROKEN[path], GOOD[path])


@pytest.mark.parametrize("path", sorted(BROKEN))
def test_edit_refused_when_it_breaks_the_parse(path: str) -> None:
    with pytest.raises(ToolError) as err:
        check_edit(path, GOOD[path], BROKEN[path])
    msg = str(err.value)
    assert msg.startswith(f"edit refused: it breaks the parse of {path} at line ")
    assert "nothing was written" in msg


def test_refusal_names_line_column_and_snippet() -> None:
    old = "x = 1\n\n\ny = 2\n"
    new = "x = 1\n\n\ny = foo(2\nz = 3\n"
    with pytest.raises(ToolError) as err:
        check_edit("pkg/m.py", old, new)
    msg = str(err.value)
    assert "pkg/m.py at line 4" in msg or "pkg/m.py at line 5" in msg
    assert "foo(2" in msg or "z = 3" in msg


def test_new_file_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ToolError):
        check_edit("new.py", None, "class :\n")


def test_already_broken_file_may_be_edited_if_no_worse() -> None:
    old = "def f(:\n    pass\n\ndef g():\n    return 1\n"
    new = "def f(:\n    pass\n\ndef g():\n    return 2\n"
    check_edit("m.py", old, new)


def test_already_broken_file_refused_when_it_gets_worse_and_new_error_reported() -> None:
    old = "def f(:\n    pass\n\ndef g():\n    return 1\n"
    new = "def f(:\n    pass\n\ndef g(:\n    return 1\n"
    with pytest.raises(ToolError) as err:
        check_edit("m.py", old, new)
    assert "line 4" in str(err.value)


def test_unknown_language_is_not_checked() -> None:
    check_edit("notes.txt", "fine", "def f(:")
    check_edit("Makefile", None, "all: (((")


def test_crlf_and_tabs_parse_clean() -> None:
    check_edit("w.py", None, "def f():\r\n\treturn 1\r\n")
    with pytest.raises(ToolError) as err:
        check_edit("w.py", "def f():\r\n\treturn 1\r\n", "def f(:\r\n\treturn 1\r\n")
    assert "\r" not in str(err.value)


def test_column_counts_characters_not_bytes() -> None:
    with pytest.raises(ToolError) as err:
        check_edit("u.py", None, "s = 'é' + (\n")
    assert "line 1" in str(err.value)
