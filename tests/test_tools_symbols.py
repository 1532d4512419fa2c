"""The symbol tools (find_symbol, replace_symbol, insert_code, repo_map) through the registry
and through `k2lsp tool NAME --json ... --repo DIR`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k2lsp.agent.events import Emitter
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult

MOD = '''\
import os


class Shop:
    """A shop."""

    # Price with tax.
    @staticmethod
    def price(x):
        return x * 1.2

    def total(self, items):
        return sum(self.price(i) for i in items)


def main():
    return Shop().total([1, 2])
'''


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".xdg"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "shop.py").write_text(MOD)
    return tmp_path


def run(
    root: Path, tool_name: str, events: list[tuple[str, dict]] | None = None, /, **args: object
) -> ToolResult:
    """Run one tool through the registry, as the agent loop does."""
    import asyncio

    emitter = Emitter("t")
    if events is not None:
        emitter.add_sink(lambda ev: events.append((ev.type, ev.data)))
    ctx = ToolContext(workspace=Workspace(root), emitter=emitter)
    return asyncio.run(build_registry().execute(tool_name, args, ctx))


def test_find_symbol_lists_definition_and_references(repo: Path) -> None:
    res = run(repo, "find_symbol", name="Shop.price")
    assert res.ok
    assert "shop.py:8-10 method Shop.price: def price(x)" in res.text
    assert "shop.py:13:" in res.text  # self.price(i) reference


def test_find_symbol_missing_suggests_similar(repo: Path) -> None:
    res = run(repo, "find_symbol", name="prise")
    assert res.ok and "No definition of 'prise'" in res.text and "price" in res.text


def test_replace_method_keeps_decorator_and_comment_and_fits_indent(repo: Path) -> None:
    res = run(
        repo,
        "replace_symbol",
        path="shop.py",
        symbol="Shop.price",
        code="def price(x):\n    return x * 2\n",
    )
    assert res.ok, res.text
    text = (repo / "shop.py").read_text()
    assert (
        "    # Price with tax.\n    @staticmethod\n    def price(x):\n        return x * 2\n"
        in text
    )
    assert "-        return x * 1.2" in res.text and "+        return x * 2" in res.text


def test_replace_with_decorators_replaces_them(repo: Path) -> None:
    code = "@classmethod\ndef price(cls, x):\n    return x\n"
    assert run(repo, "replace_symbol", path="shop.py", symbol="price", code=code).ok
    text = (repo / "shop.py").read_text()
    assert (
        "@staticmethod" not in text
        and "    @classmethod\n    def price(cls, x):\n        return x\n" in text
    )
    assert "# Price with tax." in text


def test_replace_starting_with_comment_replaces_leading_comment(repo: Path) -> None:
    code = "# Doubled.\n@staticmethod\ndef price(x):\n    return 2 * x\n"
    assert run(repo, "replace_symbol", path="shop.py", symbol="Shop.price", code=code).ok
    text = (repo / "shop.py").read_text()
    assert "Price with tax" not in text and "    # Doubled.\n    @staticmethod\n" in text


def test_replace_refused_when_code_breaks_the_parse_and_nothing_written(repo: Path) -> None:
    before = (repo / "shop.py").read_bytes()
    res = run(
        repo, "replace_symbol", path="shop.py", symbol="main", code="def main(:\n    return 1\n"
    )
    assert not res.ok and "edit refused" in res.text and "nothing was written" in res.text
    assert (repo / "shop.py").read_bytes() == before


@pytest.mark.parametrize(
    ("symbol", "expect"),
    [("nope", "no definition named 'nope'"), ("Shop.totl", "Did you mean Shop.total")],
)
def test_replace_missing_symbol_lists_candidates(repo: Path, symbol: str, expect: str) -> None:
    res = run(repo, "replace_symbol", path="shop.py", symbol=symbol, code="def x():\n    pass\n")
    assert not res.ok and expect in res.text and "Shop.price@8" in res.text


def test_ambiguous_symbol_lists_locations_and_line_suffix_picks_one(tmp_path: Path) -> None:
    src = (
        "class A:\n    @property\n    def v(self):\n        return 1\n\n"
        "    @v.setter\n    def v(self, x):\n        pass\n"
    )
    (tmp_path / "a.py").write_text(src)
    res = run(
        tmp_path, "replace_symbol", path="a.py", symbol="A.v", code="def v(self):\n    return 2\n"
    )
    assert (
        not res.ok
        and "matches 2 definitions" in res.text
        and "A.v@2" in res.text
        and "A.v@6" in res.text
    )
    res = run(
        tmp_path, "replace_symbol", path="a.py", symbol="A.v@2", code="def v(self):\n    return 2\n"
    )
    assert res.ok, res.text
    assert (
        "return 2" in (tmp_path / "a.py").read_text()
        and "@v.setter" in (tmp_path / "a.py").read_text()
    )


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("notes.txt", b"hello\n", "no tree-sitter grammar"),
        ("bin.py", b"\x00\x01\x02def f(): pass\n", "binary file"),
        ("latin.py", "x = 'caf\u00e9'\n".encode("latin-1"), "not valid UTF-8"),
    ],
)
def test_unsupported_binary_and_non_utf8_files_are_refused_clearly(
    tmp_path: Path, name: str, content: bytes, expect: str
) -> None:
    (tmp_path / name).write_bytes(content)
    for tool_name, extra in (("replace_symbol", {"symbol": "f"}), ("insert_code", {})):
        res = run(tmp_path, tool_name, path=name, code="def g():\n    pass\n", **extra)
        assert not res.ok and expect in res.text
    assert (tmp_path / name).read_bytes() == content


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("missing.py", "does not exist"),
        ("../out.py", "outside the workspace"),
        ("sub", "is a directory"),
    ],
)
def test_bad_paths_are_refused(tmp_path: Path, path: str, expect: str) -> None:
    (tmp_path / "sub").mkdir()
    res = run(tmp_path, "replace_symbol", path=path, symbol="f", code="def f():\n    pass\n")
    assert not res.ok and expect in res.text


def test_empty_code_and_both_anchors_are_refused(repo: Path) -> None:
    assert (
        "code is empty"
        in run(repo, "replace_symbol", path="shop.py", symbol="main", code="  \n").text
    )
    res = run(
        repo, "insert_code", path="shop.py", code="x = 1", after_symbol="main", before_symbol="Shop"
    )
    assert not res.ok and "not both" in res.text


def test_insert_after_method_fits_indentation(repo: Path) -> None:
    res = run(
        repo,
        "insert_code",
        path="shop.py",
        after_symbol="Shop.total",
        code="def count(self):\n    return 0\n",
    )
    assert res.ok, res.text
    text = (repo / "shop.py").read_text()
    assert (
        "        return sum(self.price(i) for i in items)\n\n"
        "    def count(self):\n        return 0\n\n\ndef main" in text
    )


def test_insert_before_symbol_goes_above_its_comments(repo: Path) -> None:
    res = run(repo, "insert_code", path="shop.py", before_symbol="Shop.price", code="TAX = 1.2\n")
    assert res.ok, res.text
    assert (
        '"""A shop."""\n\n    TAX = 1.2\n\n    # Price with tax.' in (repo / "shop.py").read_text()
    )


def test_insert_at_end_of_file_and_refusal_when_broken(repo: Path) -> None:
    assert run(repo, "insert_code", path="shop.py", code="def extra():\n    return 3").ok
    assert (
        (repo / "shop.py").read_text().endswith("total([1, 2])\n\n\ndef extra():\n    return 3\n")
    )
    before = (repo / "shop.py").read_bytes()
    res = run(repo, "insert_code", path="shop.py", code="def worse(:\n    pass\n")
    assert not res.ok and "edit refused" in res.text
    assert (repo / "shop.py").read_bytes() == before


def test_crlf_file_stays_crlf(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_bytes(
        b"def f():\r\n    return 1\r\n\r\n\r\ndef g():\r\n    return 2\r\n"
    )
    assert run(
        tmp_path, "replace_symbol", path="w.py", symbol="f", code="def f():\n    return 10\n"
    ).ok
    assert run(
        tmp_path, "insert_code", path="w.py", after_symbol="f", code="def h():\n    pass\n"
    ).ok
    data = (tmp_path / "w.py").read_bytes()
    assert b"return 10\r\n" in data and b"def h():\r\n    pass\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_tab_indented_file_gets_tabs(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text("class A:\n\tdef m(self):\n\t\treturn 1\n")
    res = run(
        tmp_path,
        "replace_symbol",
        path="t.py",
        symbol="A.m",
        code="def m(self):\n    if True:\n        return 2\n",
    )
    assert res.ok, res.text
    assert (
        tmp_path / "t.py"
    ).read_text() == "class A:\n\tdef m(self):\n\t\tif True:\n\t\t\treturn 2\n"


def test_multiline_string_contents_are_not_reindented(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("class A:\n    def m(self):\n        return 1\n")
    code = 'def m(self):\n    return """\nline at col 0\n"""\n'
    assert run(tmp_path, "replace_symbol", path="s.py", symbol="A.m", code=code).ok
    assert '        return """\nline at col 0\n"""\n' in (tmp_path / "s.py").read_text()


def test_other_languages_replace_and_gate(tmp_path: Path) -> None:
    (tmp_path / "m.go").write_text(
        "package m\n\ntype R struct{}\n\nfunc (r *R) Get() int {\n\treturn 1\n}\n"
    )
    res = run(
        tmp_path,
        "replace_symbol",
        path="m.go",
        symbol="R.Get",
        code="func (r *R) Get() int {\n\treturn 2\n}",
    )
    assert res.ok, res.text
    assert "return 2" in (tmp_path / "m.go").read_text()
    res = run(
        tmp_path,
        "replace_symbol",
        path="m.go",
        symbol="R.Get",
        code="func (r *R) Get() int {\n\treturn (\n}",
    )
    assert not res.ok and "edit refused" in res.text
    (tmp_path / "a.ts").write_text("export class S {\n  get(): number {\n    return 1;\n  }\n}\n")
    res = run(
        tmp_path,
        "replace_symbol",
        path="a.ts",
        symbol="S.get",
        code="get(): number {\n  return 2;\n}",
    )
    assert res.ok, res.text
    assert (
        tmp_path / "a.ts"
    ).read_text() == "export class S {\n  get(): number {\n    return 2;\n  }\n}\n"


def test_edit_emits_edit_event_with_diff(repo: Path) -> None:
    events: list[tuple[str, dict]] = []
    res = run(
        repo,
        "replace_symbol",
        events,
        path="shop.py",
        symbol="main",
        code="def main():\n    return 0\n",
    )
    assert res.ok
    edits = [data for kind, data in events if kind == "edit"]
    assert edits and edits[0]["path"] == "shop.py" and "+    return 0" in edits[0]["diff"]


def test_large_file_edit_finishes_in_bounded_time(tmp_path: Path) -> None:
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(100_000))  # ~3.3 MB
    (tmp_path / "big.py").write_text(body)
    t0 = time.monotonic()
    res = run(
        tmp_path,
        "replace_symbol",
        path="big.py",
        symbol="f39999",
        code="def f39999(x):\n    return 0\n",
    )
    assert res.ok, res.text
    assert time.monotonic() - t0 < 120


def test_repo_map_outlines_ranked_definitions(repo: Path) -> None:
    (repo / "use.py").write_text(
        "from shop import Shop\n\n\ndef go():\n    return Shop().total([]) + Shop().total([1])\n"
    )
    res = run(repo, "repo_map", max_tokens=512)
    assert res.ok
    lines = res.text.splitlines()
    assert lines[0].startswith("Repository map:")
    assert "shop.py:" in lines and any("class Shop" in ln for ln in lines)
    assert lines.index("shop.py:") < lines.index("use.py:")


def test_repo_map_paths_must_exist(repo: Path) -> None:
    res = run(repo, "repo_map", paths=["nowhere"])
    assert not res.ok and "does not exist" in res.text


def _cli(
    repo: Path, name: str, args: dict[str, object], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"), K2LSP_STATE_DIR=str(tmp_path / "state")
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "k2lsp",
            "tool",
            name,
            "--json",
            json.dumps(args),
            "--repo",
            str(repo),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "args", "expect", "code"),
    [
        ("repo_map", {}, "class Shop", 0),
        ("find_symbol", {"name": "Shop.total"}, "shop.py:12-13 method Shop.total", 0),
        (
            "replace_symbol",
            {"path": "shop.py", "symbol": "main", "code": "def main():\n    return 1\n"},
            "+    return 1",
            0,
        ),
        ("insert_code", {"path": "shop.py", "code": "X = 1\n"}, "+X = 1", 0),
        (
            "replace_symbol",
            {"path": "shop.py", "symbol": "main", "code": "def main(:\n"},
            "edit refused",
            1,
        ),
    ],
)
def test_cli_tool_invocations(
    repo: Path, tmp_path: Path, name: str, args: dict, expect: str, code: int
) -> None:
    proc = _cli(repo, name, args, tmp_path)
    assert proc.returncode == code, proc.stderr
    assert expect in proc.stdout
