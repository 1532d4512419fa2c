"""Pure structure-aware edit helpers: lookup messages, indentation fitting, insertion layout."""

from __future__ import annotations

import pytest

from k2lsp.code.astedit import (
    LookupFailure,
    block,
    clean_code,
    find_definition,
    insert_text,
    placements,
    replace_definitions,
    resolve_in_text,
)
from k2lsp.code.symbols import extract_symbols

SRC = "class A:\n    def m(self):\n        return 1\n\n    def m2(self):\n        return 2\n"


def test_lookup_by_plain_qualified_and_suffix_names() -> None:
    syms = extract_symbols("python", SRC.encode())
    assert find_definition(syms, "A.m", "a.py").qualname == "A.m"
    assert find_definition(syms, "m2", "a.py").qualname == "A.m2"
    assert find_definition(syms, "A", "a.py").kind == "class"


def test_missing_lookup_lists_definitions_and_close_names() -> None:
    syms = extract_symbols("python", SRC.encode())
    with pytest.raises(LookupFailure) as err:
        find_definition(syms, "A.mm", "a.py")
    assert "Did you mean" in str(err.value) and "A.m@2" in str(err.value)


def test_lookup_in_a_file_without_definitions() -> None:
    with pytest.raises(LookupFailure) as err:
        resolve_in_text("python", "x = 1\n", "f", "a.py")
    assert "defines nothing" in str(err.value)


@pytest.mark.parametrize(
    ("code", "target", "expected_first"),
    [
        ("def f():\n    return 1", "    ", "def f():\n        return 1"),  # dedented -> indented
        ("    def f():\n        return 1", "    ", "def f():\n        return 1"),  # already placed
        ("def f():\n        return 1", "    ", "def f():\n        return 1"),  # own-text form
        (
            "        def f():\n            return 1",
            "    ",
            "def f():\n        return 1",
        ),  # too deep
        ("def f():\n    return 1", "", "def f():\n    return 1"),  # top level
    ],
)
def test_placements_fit_indentation(code: str, target: str, expected_first: str) -> None:
    assert placements("python", code, target)[0] == expected_first


def test_replace_keeps_decorators_unless_code_has_them() -> None:
    src = "@dec\ndef f():\n    return 1\n"
    sym = resolve_in_text("python", src, "f", "a.py")
    assert replace_definitions("python", src, sym, "def f():\n    return 2")[0] == (
        "@dec\ndef f():\n    return 2\n"
    )
    assert replace_definitions("python", src, sym, "@other\ndef f():\n    return 2")[0] == (
        "@other\ndef f():\n    return 2\n"
    )


def test_replace_keeps_export_keyword_in_typescript() -> None:
    src = "export function f(): number {\n  return 1;\n}\n"
    sym = resolve_in_text("typescript", src, "f", "a.ts")
    out = replace_definitions("typescript", src, sym, "function f(): number {\n  return 2;\n}")[0]
    assert out == "export function f(): number {\n  return 2;\n}\n"


def test_clean_code_normalises_line_endings_and_blank_edges() -> None:
    assert clean_code("\r\n\ndef f():\r\n    pass  \r\n\n") == "def f():\n    pass"


def test_block_indents_whole_lines_and_spares_string_interiors() -> None:
    code = 'x = """\nraw\n"""\ny = 1'
    assert block("python", code, "    ") == '    x = """\nraw\n"""\n    y = 1\n'


def test_insert_layout_for_brace_languages() -> None:
    src = "class A {\n  int a() { return 1; }\n}\n"
    sym = resolve_in_text("java", src, "A.a", "A.java")
    out = insert_text("java", src, "int b() { return 2; }", sym, after=True)
    assert out == "class A {\n  int a() { return 1; }\n\n  int b() { return 2; }\n}\n"
