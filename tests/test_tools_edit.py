"""edit_file on real files: exact single replacement, line endings, tabs and modes kept, the
syntax gate, and refusals that tell the model how to retry in one step."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2lsp.agent.events import Event
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult


async def edit(ctx: ToolContext, path: str, old: str, new: str) -> ToolResult:
    """Call edit_file the way the agent loop does."""
    return await build_registry().execute(
        "edit_file", {"path": path, "old_text": old, "new_text": new}, ctx
    )


def put(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


PY = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


async def test_edit_replaces_once_records_and_returns_the_diff(
    ctx: ToolContext, root: Path, events: list[Event]
) -> None:
    put(root, "m.py", PY)
    res = await edit(ctx, "m.py", "    return a - b\n", "    return a - b - 0\n")
    assert res.ok, res.text
    assert (root / "m.py").read_text() == PY.replace("a - b\n", "a - b - 0\n")
    assert res.text.startswith(
        "Edited m.py: replaced line 6 with 1 line.\n--- a/m.py\n+++ b/m.py\n"
    )
    assert "-    return a - b\n+    return a - b - 0\n" in res.text
    assert ctx.changes.paths() == ["m.py"]
    assert ctx.changes.files[0].old_text == PY
    assert ctx.changes.files[0].new_text == (root / "m.py").read_text()
    assert events[0].type == "edit" and events[0].data["path"] == "m.py"
    assert events[0].data["diff"] in res.text
    assert not list(root.glob(".*k2tmp"))


async def test_edit_of_a_crlf_file_keeps_crlf(ctx: ToolContext, root: Path) -> None:
    put(root, "win.py", PY.replace("\n", "\r\n"))
    res = await edit(
        ctx,
        "win.py",
        "def sub(a, b):\n    return a - b\n",
        "def sub(a, b):\n    diff = a - b\n    return diff\n",
    )
    assert res.ok, res.text
    data = (root / "win.py").read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") == 7
    assert b"    diff = a - b\r\n    return diff\r\n" in data
    assert "\r" not in res.text


async def test_edit_of_a_crlf_file_accepts_crlf_old_text(ctx: ToolContext, root: Path) -> None:
    put(root, "win.txt", "a\r\nb\r\nc\r\n")
    res = await edit(ctx, "win.txt", "b\r\n", "B\r\nB2\r\n")
    assert res.ok, res.text
    assert (root / "win.txt").read_bytes() == b"a\r\nB\r\nB2\r\nc\r\n"


async def test_edit_of_a_mixed_ending_file_touches_only_the_edited_line(
    ctx: ToolContext, root: Path
) -> None:
    put(root, "mixed.txt", "one\r\ntwo\nthree\r\n")
    res = await edit(ctx, "mixed.txt", "three\n", "THREE\n")
    assert res.ok, res.text
    assert (root / "mixed.txt").read_bytes() == b"one\r\ntwo\nTHREE\r\n"


@pytest.mark.parametrize(
    ("content", "old", "new", "expected"),
    [
        ("x = 1\ny = 2", "y = 2", "y = 3", "x = 1\ny = 3"),  # no trailing newline stays so
        ("if x:\n\tpass\n", "\tpass\n", "\tx = 2\n", "if x:\n\tx = 2\n"),  # tabs kept
        ("\ufeffx = 1\n", "x = 1", "x = 2", "\ufeffx = 2\n"),  # UTF-8 BOM kept
        ("a = 'é'\n", "'é'", "'ü'", "a = 'ü'\n"),
        ("k = 1\nv = 2\n", "v = 2\n", "", "k = 1\n"),  # deletion
    ],
)
async def test_edit_keeps_the_file_as_it_was_around_the_change(
    ctx: ToolContext, root: Path, content: str, old: str, new: str, expected: str
) -> None:
    put(root, "f.py", content)
    res = await edit(ctx, "f.py", old, new)
    assert res.ok, res.text
    assert (root / "f.py").read_bytes() == expected.encode("utf-8")


async def test_edit_keeps_the_file_mode(ctx: ToolContext, root: Path) -> None:
    path = put(root, "run.sh", "#!/bin/sh\necho hi\n")
    path.chmod(0o751)
    res = await edit(ctx, "run.sh", "echo hi", "echo bye")
    assert res.ok, res.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o751


async def test_no_match_answers_with_the_closest_lines(ctx: ToolContext, root: Path) -> None:
    put(root, "m.py", PY)
    before = (root / "m.py").read_bytes()
    res = await edit(ctx, "m.py", "def sub(a, c):\n    return a - c\n", "x")
    assert not res.ok
    assert "old_text was not found in m.py; nothing was changed." in res.text
    assert "closest text is lines 5-6" in res.text
    assert "     5\tdef sub(a, b):\n     6\t    return a - b" in res.text
    assert (root / "m.py").read_bytes() == before


async def test_no_match_reports_a_whitespace_insensitive_match(
    ctx: ToolContext, root: Path
) -> None:
    put(root, "t.py", "class A:\n\tdef f(self):\n\t\treturn 1\n")
    res = await edit(ctx, "t.py", "    def f(self):\n        return 1\n", "x")
    assert not res.ok
    assert "matches lines 2-3 when whitespace is ignored" in res.text
    assert "     2\t\tdef f(self):\n     3\t\t\treturn 1" in res.text


@pytest.mark.parametrize(
    ("content", "old", "loose"),
    [
        ("value  =  compute( a, b )\n", "value = compute(a, b)", True),
        ("    if ready :\n", "if ready:", True),
        ("limit=max(10)\n", "x = 1", False),  # a short fragment inside a line is no match
    ],
)
async def test_single_line_whitespace_insensitive_match(
    ctx: ToolContext, root: Path, content: str, old: str, loose: bool
) -> None:
    put(root, "w.py", content)
    res = await edit(ctx, "w.py", old, "changed = 1")
    assert not res.ok
    assert ("matches line 1 when whitespace is ignored" in res.text) is loose


async def test_no_match_notices_an_edit_already_made(ctx: ToolContext, root: Path) -> None:
    put(root, "a.py", "import os\ntimeout_seconds = 30.0\n")
    res = await edit(ctx, "a.py", "timeout = 10", "timeout_seconds = 30.0")
    assert not res.ok and "new_text is already present at line 2" in res.text


async def test_closest_lines_are_found_in_a_large_file(ctx: ToolContext, root: Path) -> None:
    body = "".join(
        f"def handler_{i}(request):\n    return respond(request, {i})\n" for i in range(10_000)
    )
    put(root, "big.py", body)
    res = await edit(
        ctx, "big.py", "def handler_7321(request):\n    retrun respond(request, 7321)\n", ""
    )
    assert not res.ok
    assert "closest text is lines 14643-14644" in res.text
    assert " 14644\t    return respond(request, 7321)" in res.text


async def test_no_match_with_nothing_similar(ctx: ToolContext, root: Path) -> None:
    put(root, "a.py", "x = 2\n")
    res = await edit(ctx, "a.py", "completely unrelated words here", "y")
    assert not res.ok and "Nothing similar exists; use read_file or search" in res.text


async def test_several_matches_are_listed_with_line_numbers(ctx: ToolContext, root: Path) -> None:
    put(root, "dup.py", "a = 1\nx = 0\nb = 2\nx = 0\nc = 3\nx = 0\n")
    res = await edit(ctx, "dup.py", "x = 0\n", "x = 9\n")
    assert not res.ok
    assert "old_text matches 3 times in dup.py (at lines 2, 4, 6)" in res.text
    assert "Add surrounding lines to old_text" in res.text
    assert "--- match at line 4:\n     3\tb = 2\n     4\tx = 0\n     5\tc = 3" in res.text
    assert (root / "dup.py").read_text().count("x = 0") == 3


async def test_overlapping_matches_count_as_several(ctx: ToolContext, root: Path) -> None:
    put(root, "o.txt", "aaa\n")
    res = await edit(ctx, "o.txt", "aa", "b")
    assert not res.ok and "matches 2 times" in res.text


async def test_edit_refused_when_it_breaks_the_parse(
    ctx: ToolContext, root: Path, events: list[Event]
) -> None:
    put(root, "m.py", PY)
    before = (root / "m.py").read_bytes()
    res = await edit(ctx, "m.py", "def sub(a, b):", "def sub(a, b:")
    assert not res.ok
    assert "edit refused: it breaks the parse of m.py at line 5" in res.text
    assert "nothing was written" in res.text
    assert (root / "m.py").read_bytes() == before
    assert events == [] and not ctx.changes


async def test_edit_of_an_already_broken_file_passes_if_no_worse(
    ctx: ToolContext, root: Path
) -> None:
    put(root, "b.py", "def f(:\n    pass\n\nx = 1\n")
    res = await edit(ctx, "b.py", "x = 1", "x = 2")
    assert res.ok, res.text


async def test_edit_applies_to_the_unsaved_buffer(ctx: ToolContext, root: Path) -> None:
    put(root, "a.py", "x = 1\n")
    ctx.workspace.overlay["a.py"] = "x = 1\ny = 1\n"
    res = await edit(ctx, "a.py", "y = 1", "y = 2")
    assert res.ok, res.text
    assert (root / "a.py").read_text() == "x = 1\ny = 2\n"
    assert ctx.workspace.overlay["a.py"] == "x = 1\ny = 2\n"


@pytest.mark.parametrize(
    ("setup", "path", "old", "new", "expected"),
    [
        ("py", "m.py", "", "x", "old_text is empty"),
        ("py", "m.py", "return a + b", "return a + b", "old_text and new_text are identical"),
        ("none", "new.py", "a", "b", "new.py does not exist; use create_file"),
        ("dir", "pkg", "a", "b", "pkg is a directory"),
        ("bin", "x.bin", "a", "b", "x.bin is a binary file"),
        ("latin1", "l.txt", "caf", "b", "l.txt is not valid UTF-8"),
        ("huge", "h.txt", "a", "b", "too large to edit as text"),
        ("secret", ".env", "KEY", "K", ".env matches the secret denylist"),
    ],
)
async def test_edit_refusals_change_nothing(
    ctx: ToolContext, root: Path, setup: str, path: str, old: str, new: str, expected: str
) -> None:
    data: dict[str, bytes] = {
        "py": PY.encode(),
        "bin": b"a\x00b",
        "latin1": "café\n".encode("latin-1"),
        "huge": b"a" * (9 * 1024 * 1024),
        "secret": b"KEY=hunter2hunter2\n",
    }
    if setup in data:
        put(root, path, data[setup])
    elif setup == "dir":
        (root / "pkg").mkdir()
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    res = await edit(ctx, path, old, new)
    assert not res.ok
    assert expected in res.text
    assert "hunter2" not in res.text
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.text(alphabet="xyz \t", max_size=6), min_size=1, max_size=12, unique=True),
    pick=st.integers(0, 11),
    crlf=st.booleans(),
    trailing=st.booleans(),
    new=st.text(alphabet="NEW \t\n", max_size=10),
)
def test_edit_equals_a_single_replacement_in_the_files_own_endings(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[str],
    pick: int,
    crlf: bool,
    trailing: bool,
    new: str,
) -> None:
    import asyncio

    root = tmp_path_factory.mktemp("prop")
    marked = [f"L{i}:{line}" for i, line in enumerate(lines)]  # every line unique
    eol = "\r\n" if crlf else "\n"
    raw = eol.join(marked) + (eol if trailing else "")
    target = marked[pick % len(marked)]
    (root / "f.txt").write_bytes(raw.encode())
    ctx = ToolContext(Workspace(root))
    res = asyncio.run(edit(ctx, "f.txt", target, new))
    # A file without any line ending has no CRLF style to keep: new lines are LF there.
    new_eol = eol if "\r\n" in raw else "\n"
    expected = raw.replace(target, new.replace("\n", new_eol), 1)
    if target == new:
        assert not res.ok
    else:
        assert res.ok, res.text
        assert (root / "f.txt").read_bytes() == expected.encode()


def run_cli(repo: Path, name: str, args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "k2lsp",
        "tool",
        name,
        "--json",
        json.dumps(args),
        "--repo",
        str(repo),
    ]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


@pytest.mark.parametrize(
    ("old", "new", "code", "expected", "after"),
    [
        ("return a - b", "return b - a", 0, "Edited m.py", "return b - a"),
        ("retrun a - b", "x", 1, "closest text is line 6", "return a - b"),
        ("def sub(a, b):", "def sub(a, b", 1, "edit refused", "return a - b"),
    ],
)
def test_edit_file_through_the_cli(
    root: Path, old: str, new: str, code: int, expected: str, after: str
) -> None:
    put(root, "m.py", PY)
    proc = run_cli(root, "edit_file", {"path": "m.py", "old_text": old, "new_text": new})
    assert proc.returncode == code, proc.stderr
    assert expected in proc.stdout + proc.stderr
    assert after in (root / "m.py").read_text()
