"""read_file, list_files, create_file and delete_file on real files, through the tool registry
(what the model calls) and through `k2lsp tool NAME --json ... --repo DIR`."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k2lsp.agent.events import Event
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult
from k2lsp.tools.fileops import atomic_write, is_secret
from k2lsp.tools.pager import read_page


@pytest.fixture(params=["rg"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The one listing engine (ripgrep from the `ripgrep` wheel; no Python fallback)."""
    monkeypatch.delenv("K2LSP_RG", raising=False)
    return str(request.param)


async def call(ctx: ToolContext, name: str, **args: Any) -> ToolResult:
    """Run a tool the way the agent loop does."""
    return await build_registry().execute(name, args, ctx)


def write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_bytes(data.encode("utf-8"))
    return path


# ---- read_file -----------------------------------------------------------------------------


async def test_read_file_numbers_lines_and_keeps_tabs(ctx: ToolContext, root: Path) -> None:
    write(root, "a.py", "def f():\n\treturn 1\n")
    res = await call(ctx, "read_file", path="a.py")
    assert res.ok
    assert res.text == "     1\tdef f():\n     2\t\treturn 1\n[a.py: all 2 lines]"


async def test_read_file_hides_crlf_and_reads_last_line_without_newline(
    ctx: ToolContext, root: Path
) -> None:
    write(root, "w.txt", "one\r\ntwo\r\nthree")
    res = await call(ctx, "read_file", path="w.txt")
    assert "\r" not in res.text
    assert res.text.splitlines()[:3] == ["     1\tone", "     2\ttwo", "     3\tthree"]


async def test_read_file_pages_large_files_with_the_exact_next_call(
    ctx: ToolContext, root: Path
) -> None:
    write(root, "big.txt", "".join(f"line {i}\n" for i in range(1, 1001)))
    first = await call(ctx, "read_file", path="big.txt")
    lines = first.text.splitlines()
    assert lines[0] == "     1\tline 1" and lines[399] == "   400\tline 400"
    nxt_call = 'read_file {"path": "big.txt", "start_line": 401}'
    assert lines[-1] == f"[big.txt: lines 1-400 of 1000. Next page: {nxt_call}]"
    nxt = json.loads(lines[-1].split("read_file ", 1)[1].rstrip("]"))
    second = await call(ctx, "read_file", **nxt)
    assert second.text.splitlines()[0] == "   401\tline 401"
    last = await call(ctx, "read_file", path="big.txt", start_line=990, end_line=2000)
    assert last.text.splitlines()[-1] == "[big.txt: lines 990-1000 of 1000; end of file]"


async def test_read_file_page_is_cut_by_characters(ctx: ToolContext, root: Path) -> None:
    write(root, "wide.txt", "".join(f"{i:04d}" + "x" * 196 + "\n" for i in range(1, 401)))
    res = await call(ctx, "read_file", path="wide.txt")
    assert len(res.text) < 32_000
    footer = res.text.splitlines()[-1]
    assert "page cut at 30,000 characters" in footer and "Next page: read_file" in footer


async def test_read_file_truncates_a_very_long_line(ctx: ToolContext, root: Path) -> None:
    write(root, "min.js", "var a=1;" * 10_000 + "\nnext\n")
    res = await call(ctx, "read_file", path="min.js")
    first, second = res.text.splitlines()[:2]
    assert "[line truncated: 80,000 bytes in all]" in first and len(first) < 2_200
    assert second == "     2\tnext"


async def test_read_file_of_several_megabytes_reads_one_page(ctx: ToolContext, root: Path) -> None:
    n = 400_000  # ~ 11 MB, above the whole-file limit
    write(root, "huge.log", "".join(f"entry number {i:08d}\n" for i in range(1, n + 1)))
    res = await call(ctx, "read_file", path="huge.log", start_line=n - 1)
    assert res.ok, res.text
    assert res.text.splitlines() == [
        f"{n - 1:>6}\tentry number {n - 1:08d}",
        f"{n:>6}\tentry number {n:08d}",
        f"[huge.log: lines {n - 1}-{n} of {n}; end of file]",
    ]


async def test_read_file_of_one_huge_line_stays_bounded(ctx: ToolContext, root: Path) -> None:
    write(root, "blob.txt", "z" * 6_000_000)
    res = await call(ctx, "read_file", path="blob.txt")
    assert res.ok and len(res.text) < 2_500
    assert "6,000,000 bytes in all" in res.text


async def test_read_file_prefers_the_unsaved_editor_buffer(ctx: ToolContext, root: Path) -> None:
    write(root, "a.py", "on disk\n")
    ctx.workspace.overlay["a.py"] = "in the editor\n"
    res = await call(ctx, "read_file", path="a.py")
    assert "in the editor" in res.text and "on disk" not in res.text


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        ("bin", {"path": "x.bin"}, "x.bin is a binary file"),
        ("latin1", {"path": "l.txt"}, "l.txt is not valid UTF-8"),
        ("late_latin1", {"path": "late.txt"}, "late.txt is not valid UTF-8"),
        ("dir", {"path": "pkg"}, 'pkg is a directory; use list_files with path="pkg"'),
        ("none", {"path": "nope.py"}, "nope.py does not exist"),
        ("small", {"path": "s.txt", "start_line": 9}, "start_line 9 is past the end of s.txt"),
        ("small", {"path": "s.txt", "start_line": 3, "end_line": 2}, "end_line (2) is before"),
        ("small", {"path": "s.txt", "start_line": 0}, "invalid arguments for read_file"),
        ("fifo", {"path": "pipe"}, "pipe is not a regular file"),
        ("secret", {"path": ".env"}, ".env matches the secret denylist"),
        ("none", {"path": ""}, "path is empty"),
    ],
)
async def test_read_file_refusals_say_what_to_do(
    ctx: ToolContext, root: Path, setup: str, args: dict[str, Any], expected: str
) -> None:
    files: dict[str, bytes] = {
        "bin": b"\x7fELF\x00\x01\x02",
        "latin1": "café\n".encode("latin-1"),
        "late_latin1": b"ok\n" * 500_000 + "é\n".encode("latin-1"),
        "small": b"a\nb\n",
        "secret": b"API_KEY=sk-live\n",
    }
    names = {
        "bin": "x.bin",
        "latin1": "l.txt",
        "late_latin1": "late.txt",
        "small": "s.txt",
        "secret": ".env",
    }
    if setup in files:
        write(root, names[setup], files[setup])
    elif setup == "dir":
        (root / "pkg").mkdir()
    elif setup == "fifo":
        os.mkfifo(root / "pipe")
    res = await call(ctx, "read_file", **args)
    assert not res.ok
    assert expected in res.text
    assert "sk-live" not in res.text


async def test_read_file_of_empty_file(ctx: ToolContext, root: Path) -> None:
    write(root, "e.txt", "")
    res = await call(ctx, "read_file", path="e.txt")
    assert res.ok and res.text == "e.txt is empty (0 lines)."


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab\t é\r", max_size=12), max_size=30),
    tail=st.booleans(),
    start=st.integers(1, 35),
    span=st.integers(0, 40),
    chunk=st.integers(1, 17),
)
def test_pager_matches_naive_slicing_for_any_chunking(
    lines: list[str], tail: bool, start: int, span: int, chunk: int
) -> None:
    text = "\n".join(lines) + ("\n" if tail and lines else "")
    page = read_page(io.BytesIO(text.encode()), "t", start, start + span, 10**9, chunk_size=chunk)
    naive = text.split("\n")
    if text.endswith("\n") or not text:
        naive.pop()
    assert page.total_lines == len(naive)
    want = [(n, s.rstrip("\r")) for n, s in enumerate(naive, 1) if start <= n <= start + span]
    assert page.lines == want


# ---- list_files ----------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    write(root, ".gitignore", "build/\n*.log\n!keep.log\n/top_only.txt\n")
    write(root, "src/app.py", "x = 1\n")
    write(root, "src/util/helpers.py", "y = 2\n")
    write(root, "src/.gitignore", "generated_*.py\n")
    write(root, "src/generated_models.py", "z = 3\n")
    write(root, "src/top_only.txt", "not anchored here\n")
    write(root, "top_only.txt", "ignored at the root\n")
    write(root, "build/out.bin", b"\x00\x01")
    write(root, "debug.log", "noise\n")
    write(root, "keep.log", "kept\n")
    write(root, "README.md", "# hi\n")
    write(root, ".git/config", "[core]\n")
    write(root, ".github/workflows/ci.yml", "on: push\n")


async def test_list_files_is_a_tree_honouring_gitignore(
    ctx: ToolContext, root: Path, engine: str
) -> None:
    make_tree(root)
    res = await call(ctx, "list_files")
    assert res.ok
    assert res.text == (
        "8 files under the workspace root (.gitignored files and .git not shown):\n"
        ".gitignore\nREADME.md\nkeep.log\n"
        ".github/workflows/\n  ci.yml\n"
        "src/\n  .gitignore\n  app.py\n  top_only.txt\n"
        "src/util/\n  helpers.py"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"path": "src"},
            ["src/.gitignore", "src/app.py", "src/top_only.txt", "src/util/helpers.py"],
        ),
        ({"pattern": "*.py"}, ["src/app.py", "src/util/helpers.py"]),
        ({"path": "src", "pattern": "helpers.*"}, ["src/util/helpers.py"]),
        ({"pattern": "src/**/*.py"}, ["src/app.py", "src/util/helpers.py"]),
    ],
)
async def test_list_files_narrows_by_path_and_pattern(
    ctx: ToolContext, root: Path, engine: str, args: dict[str, str], expected: list[str]
) -> None:
    make_tree(root)
    res = await call(ctx, "list_files", **args)
    listed = _paths_of_tree(res.text)
    assert listed == expected


def _paths_of_tree(text: str) -> list[str]:
    out, folder = [], ""
    for line in text.splitlines()[1:]:
        if line.startswith("["):
            continue
        if line.endswith("/"):
            folder = line
        elif line.startswith("  "):
            out.append(folder + line.strip().split("  ")[0])
        else:
            out.append(line.split("  ")[0])
    return out


IGNORE_CASES = {
    "double-star dir": ("**/cache/\n", ["a/cache/x.txt", "cache/y.txt", "a/cachex.txt"]),
    "anchored path": ("/docs/*.tmp\n", ["docs/a.tmp", "sub/docs/b.tmp", "docs/c.txt"]),
    "middle double-star": ("docs/**/*.tmp\n", ["docs/a/b/c.tmp", "docs/x.tmp", "y.tmp"]),
    "negation": ("*.txt\n!keep.txt\n", ["a.txt", "keep.txt", "d/keep.txt", "d/b.txt"]),
    "char class": ("file[0-9].py\n", ["file1.py", "fileA.py", "d/file2.py"]),
    "nested file": ("", ["d/.gitignore", "d/x.log", "x.log"]),
    "comment and blank": ("# *.py\n\n*.md\n", ["a.py", "b.md"]),
    "dir-only vs file": ("out/\n", ["out/a.txt", "d/out", "x/out/b.txt"]),
    "info/exclude and .ignore": ("", [".git/info/exclude", ".ignore", "a.tmp", "b.bak", "c.py"]),
}


@pytest.mark.parametrize("case", sorted(IGNORE_CASES))
async def test_list_files_lists_what_git_leaves_untracked_and_unignored(
    ctx: ToolContext, root: Path, case: str
) -> None:
    """The ignore semantics of the listing engine match git's own (`git ls-files --others
    --exclude-standard` in a fresh repository), plus `.ignore`, which git does not read."""
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=_clean_git_env())
    ignore, files = IGNORE_CASES[case]
    write(root, ".gitignore", ignore)
    for rel in files:
        special = {".gitignore": "*.log\n", "exclude": "*.tmp\n", ".ignore": "*.bak\n"}
        write(root, rel, special.get(rel.rsplit("/", 1)[-1], "x\n"))
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
        env=_clean_git_env(),
    )
    by_git = {p for p in proc.stdout.decode().split("\0") if p}
    by_ignore_file = {p for p in by_git if p.endswith(".bak") and (root / ".ignore").exists()}
    listed = _paths_of_tree((await call(ctx, "list_files")).text)
    assert sorted(listed) == sorted(by_git - by_ignore_file)


def _clean_git_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


async def test_list_files_is_capped_with_a_note(ctx: ToolContext, root: Path, engine: str) -> None:
    for i in range(620):
        write(root, f"many/f{i:04d}.txt", "")
    res = await call(ctx, "list_files", path="many")
    assert res.text.startswith("620 files under many")
    assert res.text.endswith("[... 120 more files not shown; narrow with path or pattern ...]")
    assert len(_paths_of_tree(res.text)) == 500


async def test_list_files_stays_within_the_character_cap(
    ctx: ToolContext, root: Path, engine: str
) -> None:
    for i in range(450):
        write(root, f"d{i:03d}/{'n' * 60}.txt", "")
    res = await call(ctx, "list_files")
    assert len(res.text) < 31_000
    shown = len(_paths_of_tree(res.text))
    assert 100 < shown < 450
    assert res.text.endswith(
        f"[... {450 - shown} more files not shown; narrow with path or pattern ...]"
    )


async def test_list_files_marks_secret_files(ctx: ToolContext, root: Path, engine: str) -> None:
    write(root, ".env", "TOKEN=abc\n")
    write(root, "deploy/id_rsa", "-----BEGIN-----\n")
    res = await call(ctx, "list_files")
    assert ".env  (secret: not readable)" in res.text
    assert "  id_rsa  (secret: not readable)" in res.text
    assert "abc" not in res.text


@pytest.mark.parametrize(
    ("setup", "args", "ok", "expected"),
    [
        ("none", {"path": "missing"}, False, "missing does not exist"),
        ("file", {"path": "a.txt"}, True, "a.txt is a file (3 bytes); use read_file"),
        ("emptydir", {"path": "empty"}, True, "No files under empty"),
        ("file", {"pattern": "*.rs"}, True, "No files under the workspace root matching '*.rs'"),
    ],
)
async def test_list_files_edge_cases(
    ctx: ToolContext,
    root: Path,
    engine: str,
    setup: str,
    args: dict[str, str],
    ok: bool,
    expected: str,
) -> None:
    if setup == "file":
        write(root, "a.txt", "abc")
    elif setup == "emptydir":
        (root / "empty").mkdir()
    res = await call(ctx, "list_files", **args)
    assert res.ok is ok
    assert expected in res.text


# ---- create_file / delete_file ------------------------------------------------------------


async def test_create_file_makes_parents_records_the_edit_and_returns_a_diff(
    ctx: ToolContext, root: Path, events: list[Event]
) -> None:
    res = await call(ctx, "create_file", path="pkg/sub/mod.py", content="def f():\n\treturn 1\n")
    assert res.ok, res.text
    path = root / "pkg/sub/mod.py"
    assert path.read_bytes() == b"def f():\n\treturn 1\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert ctx.changes.paths() == ["pkg/sub/mod.py"]
    assert ctx.changes.files[0].kind == "created"
    assert ctx.changes.files[0].new_text == "def f():\n\treturn 1\n"
    assert [e.type for e in events] == ["edit"]
    assert events[0].data["diff"].startswith("--- /dev/null\n+++ b/pkg/sub/mod.py\n")
    assert "+\treturn 1" in res.text
    assert not list(root.rglob("*.k2tmp"))


@pytest.mark.parametrize(
    ("setup", "path", "expected"),
    [
        ("file", "a.py", "a.py already exists; use edit_file"),
        ("dir", "pkg", "pkg is an existing directory"),
        ("file", "a.py/inner.py", "a.py is a file, so it cannot hold a.py/inner.py"),
        ("none", "newdir/", "names a folder"),
        ("none", "broken.py", "edit refused: it breaks the parse of broken.py"),
    ],
)
async def test_create_file_refusals_write_nothing(
    ctx: ToolContext, root: Path, events: list[Event], setup: str, path: str, expected: str
) -> None:
    if setup == "file":
        write(root, "a.py", "x = 1\n")
    elif setup == "dir":
        (root / "pkg").mkdir()
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    res = await call(ctx, "create_file", path=path, content="def broken(:\n")
    assert not res.ok
    assert expected in res.text
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before
    assert events == [] and not ctx.changes


async def test_delete_file_records_a_diff_to_dev_null(
    ctx: ToolContext, root: Path, events: list[Event]
) -> None:
    write(root, "old.py", "x = 1\n")
    res = await call(ctx, "delete_file", path="old.py")
    assert res.ok and res.text == "Deleted old.py."
    assert not (root / "old.py").exists()
    assert events[0].data == {
        "path": "old.py",
        "diff": "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n",
    }


async def test_delete_file_of_binary_or_secret_file_shows_no_content(
    ctx: ToolContext, root: Path, events: list[Event]
) -> None:
    write(root, "img.png", b"\x89PNG\x00\x00")
    write(root, ".env", "TOKEN=hunter2hunter2\n")
    for name in ("img.png", ".env"):
        res = await call(ctx, "delete_file", path=name)
        assert res.ok
    assert [e.data["diff"] for e in events] == [
        "Deleted img.png (no text diff)\n",
        "Deleted .env (no text diff)\n",
    ]


async def test_delete_file_removes_a_link_not_its_target(ctx: ToolContext, root: Path) -> None:
    write(root, "real.txt", "keep me\n")
    (root / "alias.txt").symlink_to(root / "real.txt")
    res = await call(ctx, "delete_file", path="alias.txt")
    assert res.ok
    assert not (root / "alias.txt").is_symlink()
    assert (root / "real.txt").read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("setup", "path", "expected"),
    [("none", "gone.py", "gone.py does not exist"), ("dir", "pkg", "pkg is a directory")],
)
async def test_delete_file_refusals(
    ctx: ToolContext, root: Path, setup: str, path: str, expected: str
) -> None:
    if setup == "dir":
        write(root, "pkg/a.py", "")
    res = await call(ctx, "delete_file", path=path)
    assert not res.ok and expected in res.text
    assert setup != "dir" or (root / "pkg/a.py").exists()


def test_atomic_write_cleans_up_its_temp_file_when_the_replace_fails(root: Path) -> None:
    (root / "target").mkdir()
    with pytest.raises(OSError):
        atomic_write(root, root / "target", "text")
    assert [p.name for p in root.iterdir()] == ["target"]


@pytest.mark.parametrize(
    "rel",
    [
        ".env",
        "a/.env.local",
        "config/prod.env",
        "keys/server.pem",
        "home/.aws/credentials",
        ".aws/credentials",
        "id_rsa.pub",
        "src/app.py",
        "docs/env.md",
        "credentials.yaml",
    ],
)
def test_secret_filter_agrees_with_the_workspace(root: Path, rel: str) -> None:
    ws = Workspace(root, secret_globs=["*.secret"])
    assert is_secret(ToolContext(ws), rel) == ws.is_secret(rel)
    assert not is_secret(ToolContext(Workspace(root, allow_secrets=True)), rel)


# ---- confinement: every tool --------------------------------------------------------------

TOOL_ARGS: dict[str, dict[str, Any]] = {
    "read_file": {},
    "list_files": {},
    "search": {"pattern": "secret"},
    "edit_file": {"old_text": "secret", "new_text": "changed"},
    "create_file": {"content": "new\n"},
    "delete_file": {},
}


@pytest.mark.parametrize("escape", ["dotdot", "absolute", "symlink"])
@pytest.mark.parametrize("name", sorted(TOOL_ARGS))
async def test_every_tool_refuses_paths_outside_the_workspace(
    ctx: ToolContext, root: Path, tmp_path: Path, name: str, escape: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.txt").write_text("secret outside\n")
    (root / "link").symlink_to(outside)
    target = {"dotdot": "../outside", "absolute": str(outside), "symlink": "link"}[escape]
    file_tools = {"read_file", "edit_file", "delete_file"}
    leaf = "o.txt" if name in file_tools else "fresh.txt" if name == "create_file" else ""
    path = f"{target}/{leaf}" if leaf else target
    res = await call(ctx, name, path=path, **TOOL_ARGS[name])
    assert not res.ok
    assert "is outside the workspace" in res.text and "use a path relative" in res.text
    assert (outside / "o.txt").read_text() == "secret outside\n"
    assert sorted(p.name for p in outside.iterdir()) == ["o.txt"]
    assert "secret outside" not in res.text


# ---- CLI: `k2lsp tool NAME --json ... --repo DIR` -----------------------------------------


def run_cli(repo: Path, name: str, args: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run `python -m k2lsp tool NAME --json ARGS --repo REPO`."""
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
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("name", "args", "code", "expected"),
    [
        ("read_file", {"path": "a.py"}, 0, "     1\tx = 1"),
        ("read_file", {"path": "nope.py"}, 1, "nope.py does not exist"),
        ("list_files", {}, 0, "a.py"),
        ("create_file", {"path": "b.py", "content": "y = 2\n"}, 0, "Created b.py"),
        ("create_file", {"path": "a.py", "content": "y = 2\n"}, 1, "already exists"),
        ("delete_file", {"path": "a.py"}, 0, "Deleted a.py."),
        ("delete_file", {"path": "../x"}, 1, "outside the workspace"),
    ],
)
def test_file_tools_through_the_cli(
    root: Path, name: str, args: dict[str, Any], code: int, expected: str
) -> None:
    write(root, "a.py", "x = 1\n")
    proc = run_cli(root, name, args)
    assert proc.returncode == code, proc.stderr
    assert expected in proc.stdout + proc.stderr
