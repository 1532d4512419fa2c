"""The syntax gate: edits that add parse errors are refused with a location; others pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from k2lsp.code.gate import check_edit, problems_of
from k2lsp.tools.base import ToolContext, ToolError

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


PY_OK = "def f(x):\n    if x:\n        return 1\n    return 2\n"
# Edits tree-sitter forgives but Python refuses: (kind, new text, exception name, line).
PY_REFUSED = [
    ("bad dedent", "def f(x):\n    if x:\n        return 1\n  return 2\n", "IndentationError", 4),
    ("tab/space mix", "def f(x):\n    if x:\n\treturn 1\n    return 2\n", "TabError", 3),
    ("python 2 print", 'def f(x):\n    print "x"\n    return 2\n', "SyntaxError", 2),
    ("unexpected indent", "def f(x):\n    y = 1\n        return 2\n", "IndentationError", 3),
    ("return outside function", "x = 1\nreturn x\n", "SyntaxError", 2),
    ("await outside async", "def f(x):\n    await x\n", "SyntaxError", 2),
    ("null byte", "def f(x):\n    return 2\n\0\n", "SyntaxError", 3),
    ("bad assignment", "def f(x):\n    f(x) = 2\n", "SyntaxError", 2),
]


@pytest.mark.parametrize(("kind", "new", "exc", "line"), PY_REFUSED, ids=[c[0] for c in PY_REFUSED])
def test_python_edit_refused_with_the_interpreters_message_and_line(
    kind: str, new: str, exc: str, line: int
) -> None:
    with pytest.raises(ToolError) as err:
        check_edit("pkg/m.py", PY_OK, new)
    msg = str(err.value)
    assert msg.startswith(f"edit refused: it breaks the parse of pkg/m.py at line {line}: ")
    assert f"says {exc}: " in msg and "nothing was written" in msg
    assert "\0" not in msg


@pytest.mark.parametrize(
    "new", [PY_REFUSED[0][1], PY_REFUSED[1][1], PY_REFUSED[2][1]], ids=["dedent", "tab", "print"]
)
def test_tree_sitter_alone_accepts_what_python_refuses(new: str) -> None:
    # Why the interpreter is asked: the grammar parses these without an error node.
    assert problems_of("python", new)[1] == []


def test_fixing_a_file_python_refuses_is_allowed() -> None:
    broken = "def f(x):\n    if x:\n\treturn 1\n    return 2\n"
    check_edit("m.py", broken, PY_OK)


def test_file_python_already_refuses_may_be_edited_if_the_parse_gets_no_worse() -> None:
    broken = "def f(x):\n    if x:\n\treturn 1\n    return 2\n"
    check_edit("m.py", broken, broken.replace("return 2", "return 3"))
    with pytest.raises(ToolError):
        check_edit("m.py", broken, broken.replace("return 2", "return (3"))


def test_new_python_file_that_python_refuses_is_refused() -> None:
    with pytest.raises(ToolError) as err:
        check_edit("new.py", None, "if True:\n    x = 1\n  y = 2\n")
    assert "IndentationError" in str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffx = 1\n",  # a BOM is fine in a file
        "s = '\\d'\n",  # an invalid escape is a warning, not a refusal
        "# -*- coding: latin-1 -*-\nx = 'é'\n",
        "def f():\n\tif 1:\n\t\treturn 1\n",
        "x = [\n1,\n        2]\n",  # indentation inside brackets is free
    ],
)
def test_python_the_interpreter_accepts_passes(text: str) -> None:
    check_edit("ok.py", None, text)
    check_edit("ok.py", "x = 0\n", text)


@pytest.mark.parametrize(
    ("path", "new"),
    [
        ("a.js", "function f() { return [1, 2; }\n"),
        ("a.ts", "let x: = 1;\n"),
        ("a.go", "package a\n\nfunc F() { x := }\n"),
        ("a.rs", "fn f() { let x = ; }\n"),
        ("a.c", "int f(void) { return 1 }\n"),
        ("a.cpp", "int f() { return (1; }\n"),
    ],
)
def test_error_and_missing_nodes_refuse_other_languages(path: str, new: str) -> None:
    with pytest.raises(ToolError) as err:
        check_edit(path, GOOD[path], new)
    assert "at line 1" in str(err.value) or "at line 3" in str(err.value)


async def test_edit_file_refuses_a_tab_mix_and_writes_nothing(ctx: ToolContext, root: Path) -> None:
    from k2lsp.tools import build_registry

    (root / "m.py").write_text(PY_OK)
    res = await build_registry().execute(
        "edit_file",
        {"path": "m.py", "old_text": "        return 1", "new_text": "\treturn 1"},
        ctx,
    )
    assert not res.ok and "TabError" in res.text
    assert (root / "m.py").read_text() == PY_OK
