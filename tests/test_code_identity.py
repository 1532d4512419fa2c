"""Identity edits keep every byte: a definition replaced by (or inserted as) its own text.

Over a deterministic sample of real corpora (the running interpreter's stdlib; the Django
sdist that `.ci/test` caches) and over the layouts that used to break: comments at column 0,
continuation lines left of the block, tab files with space alignment, trailing spaces inside
strings. The whole corpora run in `bench/edit_fidelity.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from k2lsp.code.astedit import insert_text, replace_definitions
from k2lsp.code.symbols import Symbol, extract_symbols
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext
from k2lsp.tools.symbols import _first_passing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import corpora

SAMPLE_EVERY = 23  # every 23rd file of a corpus: ~40 stdlib files, ~120 Django files


def definitions(root: Path, every: int) -> Iterator[tuple[str, str, Symbol]]:
    """(relative path, file text, definition) for every definition of every `every`th file."""
    for rel in corpora.python_files(root)[::every]:
        data = (root / rel).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\r" in text:  # the tools hand the pure helpers LF text
            continue
        for sym in extract_symbols("python", data):
            yield rel, text, sym


def replaced_by_itself(rel: str, text: str, sym: Symbol) -> str:
    """The file after replace_symbol's placement + gate with the definition's own text."""
    data = text.encode("utf-8")
    own = data[sym.start_byte : sym.end_byte].decode("utf-8")
    return _first_passing(rel, text, replace_definitions("python", text, sym, own))


def inserted_copy_is_exact(text: str, sym: Symbol) -> bool:
    """Inserting the definition's full lines after it adds exactly those lines (and blanks)."""
    data = text.encode("utf-8")
    line_start = data.rfind(b"\n", 0, sym.start_byte) + 1
    lines = data[line_start : sym.end_byte].decode("utf-8")
    out = insert_text("python", text, lines, sym, after=True).encode("utf-8")
    cut = data.find(b"\n", sym.end_byte) + 1 or len(data)  # after the anchor's last line
    added = out[cut : len(out) - (len(data) - cut)]
    return (
        out[:cut] == data[:cut]
        and out.endswith(data[cut:])
        and added.strip(b"\n") == (lines.encode("utf-8"))
    )


def _corpus_root(name: str) -> Path:
    if name == "stdlib":
        return corpora.stdlib_root()
    root = corpora.django_root()
    if not (root / "django").is_dir():
        pytest.skip(f"Django sdist not cached at {root}: run `python bench/corpora.py fetch`")
    return root


@pytest.mark.parametrize("name", ["stdlib", "django"])
def test_every_sampled_definition_replaced_by_itself_is_byte_identical(name: str) -> None:
    root = _corpus_root(name)
    total, wrong = 0, []
    for rel, text, sym in definitions(root, SAMPLE_EVERY):
        total += 1
        if replaced_by_itself(rel, text, sym) != text:
            wrong.append(f"{rel}:{sym.start_line} {sym.qualname}")
    assert total > 300
    assert wrong == []


@pytest.mark.parametrize("name", ["stdlib", "django"])
def test_every_sampled_definition_inserted_as_itself_keeps_its_bytes(name: str) -> None:
    root = _corpus_root(name)
    wrong = [
        f"{rel}:{sym.start_line} {sym.qualname}"
        for rel, text, sym in definitions(root, SAMPLE_EVERY * 3)
        if sym.depth > 0 and not inserted_copy_is_exact(text, sym)
    ]
    assert wrong == []


LAYOUTS = {
    "comment at column 0": (
        "class A:\n    def m(self):\n        x = 1\n# commented out\n##    y = 2\n"
        "        return x\n",
        "A.m",
    ),
    "continuation left of the block": (
        "class A:\n    def m(self):\n        x = f(\n1, 2)\n        return x\n",
        "A.m",
    ),
    "tabs with space alignment": (
        "class A:\n\tdef m(self):\n\t\tx = f(1,\n\t\t      2)\n  # note\n\t\treturn x\n",
        "A.m",
    ),
    "trailing spaces in a string": (
        'class A:\n    def m(self):\n        return """a  \n  b   \n"""\n',
        "A.m",
    ),
    "whitespace-only line": (
        "class A:\n    def m(self):\n        x = 1\n    \n        return x\n",
        "A.m",
    ),
    "string continuation at column 0": (
        'class A:\n    def m(self):\n        expected = (\n"    a\\n"\n" b")  # yes\n'
        "        return expected\n",
        "A.m",
    ),
    "decorated, comment between decorator and def": (
        "class A:\n    @property\n# why\n    def m(self):\n        return 1\n",
        "A.m",
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_replace_symbol_with_its_own_text_writes_nothing_new(
    ctx: ToolContext, root: Path, layout: str
) -> None:
    src, query = LAYOUTS[layout]
    (root / "m.py").write_text(src)
    sym = next(s for s in extract_symbols("python", src.encode()) if s.qualname == query)
    own = src.encode()[sym.start_byte : sym.end_byte].decode()
    res = await build_registry().execute(
        "replace_symbol", {"path": "m.py", "symbol": query, "code": own}, ctx
    )
    assert res.ok, res.text
    assert (root / "m.py").read_text() == src


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_inserting_a_definitions_own_lines_adds_exactly_those_lines(layout: str) -> None:
    src, query = LAYOUTS[layout]
    sym = next(s for s in extract_symbols("python", src.encode()) if s.qualname == query)
    assert inserted_copy_is_exact(src, sym)


async def test_insert_code_keeps_a_column_0_comment_where_it_was(
    ctx: ToolContext, root: Path
) -> None:
    src = "class A:\n    def m(self):\n        return 1\n"
    (root / "m.py").write_text(src)
    code = "    def n(self):\n        x = 1\n# keep me at column 0\n        return x\n"
    res = await build_registry().execute(
        "insert_code", {"path": "m.py", "code": code, "after_symbol": "A.m"}, ctx
    )
    assert res.ok, res.text
    assert (root / "m.py").read_text() == src + "\n" + code
