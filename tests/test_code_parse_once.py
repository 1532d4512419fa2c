"""One parse per edit: the editing tools (through the real registry) parse the text they write
exactly once and the old text at most once, and that tree serves the syntax gate, the next
edit's symbol lookup and the repo map. Counted with `k2lsp.code.parse.count_parses`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k2lsp.agent.events import Emitter
from k2lsp.code.parse import count_parses, forget_trees
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult

PY = '''\
import os


class Shop:
    """A shop."""

    @staticmethod
    def price(x):
        return x * 1.2

    def total(self, items):
        return sum(self.price(i) for i in items)


def main():
    return Shop().total([1, 2])
'''

JS = """\
export function area(r) {
  return 3.14 * r * r;
}

class Box {
  size() {
    return 1;
  }
}
"""


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".xdg"))
    forget_trees()  # every test starts with no tree of its texts


def run(root: Path, name: str, events: list[tuple[str, dict]], /, **args: object) -> ToolResult:
    emitter = Emitter("t")
    emitter.add_sink(lambda ev: events.append((ev.type, ev.data)))
    ctx = ToolContext(workspace=Workspace(root), emitter=emitter)
    return asyncio.run(build_registry().execute(name, args, ctx))


def _lf(path: Path) -> str:
    return path.read_bytes().decode().replace("\r\n", "\n")


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_replace_symbol_parses_old_once_new_once_and_reuses_the_tree(
    tmp_path: Path, crlf: bool
) -> None:
    src = tmp_path / "shop.py"
    src.write_bytes(PY.replace("\n", "\r\n").encode() if crlf else PY.encode())
    events: list[tuple[str, dict]] = []
    old = PY
    with count_parses() as log:
        res = run(
            tmp_path,
            "replace_symbol",
            events,
            path="shop.py",
            symbol="Shop.total",
            code="def total(self, items):\n    return sum(items)",
        )
    assert res.ok, res.text
    new = _lf(src)
    assert "return sum(items)" in new and new != old
    assert log.of(new) == 1  # the written text: exactly one parse
    assert log.of(old) == 1  # the old text: parsed once, for the symbol lookup
    # The rest is the model's fragment (its multi-line strings are never re-indented).
    assert log.count == 3
    assert src.read_bytes().count(b"\r\n") == (new.count("\n") if crlf else 0)
    edits = [d for t, d in events if t == "edit"]
    assert len(edits) == 1 and "+        return sum(items)" in edits[0]["diff"]
    assert "\r" not in edits[0]["diff"] and edits[0]["diff"] in res.text

    # The next edit of the same file finds its old text's tree in the cache: no parse of it.
    with count_parses() as log2:
        res2 = run(
            tmp_path,
            "replace_symbol",
            events,
            path="shop.py",
            symbol="main",
            code="def main():\n    return 0",
        )
    assert res2.ok, res2.text
    assert log2.of(new) == 0
    assert log2.of(_lf(src)) == 1


def test_insert_code_parses_new_text_once_and_old_text_at_most_once(tmp_path: Path) -> None:
    (tmp_path / "geo.js").write_text(JS)
    events: list[tuple[str, dict]] = []
    with count_parses() as log:
        res = run(
            tmp_path,
            "insert_code",
            events,
            path="geo.js",
            after_symbol="area",
            code="function perimeter(r) {\n  return 2 * 3.14 * r;\n}",
        )
    assert res.ok, res.text
    new = (tmp_path / "geo.js").read_text()
    assert "function perimeter" in new
    assert log.of(new) == 1  # the gate's parse, reused to keep the tree
    assert log.of(JS) <= 1
    assert log.count == log.of(new) + log.of(JS) + 1  # + the inserted fragment


def test_refused_edit_parses_the_old_text_once_for_lookup_and_gate(tmp_path: Path) -> None:
    (tmp_path / "geo.js").write_text(JS)
    events: list[tuple[str, dict]] = []
    with count_parses() as log:
        res = run(
            tmp_path,
            "replace_symbol",
            events,
            path="geo.js",
            symbol="area",
            code="function area(r) {\n  return (3.14 * r * r;\n}",
        )
    assert not res.ok and "edit refused" in res.text
    assert (tmp_path / "geo.js").read_text() == JS  # nothing written
    assert log.of(JS) == 1  # lookup and gate share one tree of the old text
    assert not [t for t, _ in events if t == "edit"]


def test_repo_map_reuses_the_tree_of_an_edit(tmp_path: Path) -> None:
    (tmp_path / "geo.js").write_text(JS)
    (tmp_path / "shop.py").write_text(PY)
    events: list[tuple[str, dict]] = []
    assert run(tmp_path, "repo_map", events).ok
    res = run(
        tmp_path,
        "edit_file",
        events,
        path="shop.py",
        old_text="return x * 1.2",
        new_text="return x * 1.25",
    )
    assert res.ok, res.text
    with count_parses() as log:
        res = run(tmp_path, "find_symbol", events, name="Shop.price")
    assert res.ok and "shop.py:7-9 method Shop.price" in res.text
    assert log.of((tmp_path / "shop.py").read_text()) == 0  # refreshed from the edit's tree


def test_tree_cache_is_keyed_by_language_and_content_and_keeps_no_huge_text() -> None:
    from k2lsp.code.parse import _CACHE_TEXT_BYTES, cached_tree, parse_cached

    small = b"def f():\n    return 1\n"
    with count_parses() as log:
        tree = parse_cached("python", small)
        assert parse_cached("python", small) is tree and cached_tree("python", small) is tree
        assert cached_tree("python", small + b"\n") is None  # another text
        parse_cached("javascript", small)  # another grammar: its own tree
        big = b"x = 1\n" * (_CACHE_TEXT_BYTES // 6 + 1)
        parse_cached("python", big)
        assert cached_tree("python", big) is None  # parsed, not kept (trees are ~40x the text)
    assert log.of(small) == 2 and log.of(big) == 1 and log.count == 3


@given(
    raw=st.text(alphabet="ab \t\r\n", max_size=40),
    new=st.text(alphabet="ab \t\r\n", max_size=40),
)
@settings(max_examples=300, deadline=None)
def test_the_one_diff_is_the_diff_of_what_was_on_disk_and_what_was_written(
    raw: str, new: str
) -> None:
    from k2lsp.tools import fileops

    tf = fileops.TextFile("f.py", raw, fileops.uses_crlf(raw))
    disk = tf.to_disk(new)
    assert tf.diff_to("f.py", new, disk) == fileops.diff_of("f.py", raw, disk)


def test_repo_map_and_the_next_edit_share_one_symbol_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k2lsp.code import symbols

    (tmp_path / "geo.js").write_text(JS)
    events: list[tuple[str, dict]] = []
    res = run(
        tmp_path,
        "replace_symbol",
        events,
        path="geo.js",
        symbol="Box.size",
        code="size() {\n  return 2;\n}",
    )
    assert res.ok, res.text
    written = (tmp_path / "geo.js").read_bytes()
    extracted: list[bytes] = []
    real = symbols.extract_symbols

    def counting(lang: str, data: bytes, tree: object | None = None) -> list[symbols.Symbol]:
        extracted.append(data)
        return real(lang, data, tree)

    monkeypatch.setattr(symbols, "extract_symbols", counting)
    with count_parses() as log:
        assert run(tmp_path, "find_symbol", events, name="Box.size").ok  # the map's refresh
        res = run(
            tmp_path,
            "replace_symbol",
            events,
            path="geo.js",
            symbol="area",
            code="function area(r) {\n  return r;\n}",
        )
    assert res.ok, res.text
    assert extracted.count(written) == 1  # by the refresh; the edit's lookup reused it
    assert log.of(written) == 0  # the tree the first edit kept
