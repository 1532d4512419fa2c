"""apply_patch: unified diffs over several files, context-anchored, all-or-nothing, gated."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.agent.events import Emitter
from k2lsp.runs.workspace import Workspace
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult
from k2lsp.tools.patch import normalize_patch

A = "def a():\n    return 1\n\n\ndef b():\n    return 2\n\n\ndef c():\n    return 3\n"
B = "x = 1\ny = 2\nz = 3\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".xdg"))
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.py").write_text(A)
    (root / "b.py").write_text(B)
    return root


def patch(root: Path, text: str, events: list[tuple[str, dict]] | None = None) -> ToolResult:
    """Run apply_patch through the registry."""
    emitter = Emitter("t")
    if events is not None:
        emitter.add_sink(lambda ev: events.append((ev.type, ev.data)))
    ctx = ToolContext(workspace=Workspace(root), emitter=emitter)
    return asyncio.run(build_registry().execute("apply_patch", {"patch": text}, ctx))


TWO_FILES = """\
--- a/a.py
+++ b/a.py
@@ -5,2 +5,2 @@
 def b():
-    return 2
+    return 20
--- a/b.py
+++ b/b.py
@@ -1,3 +1,3 @@
 x = 1
-y = 2
+y = 22
 z = 3
"""


def test_patch_applies_to_several_files_and_emits_edits(repo: Path) -> None:
    events: list[tuple[str, dict]] = []
    res = patch(repo, TWO_FILES, events)
    assert res.ok, res.text
    assert "return 20" in (repo / "a.py").read_text()
    assert (repo / "b.py").read_text() == "x = 1\ny = 22\nz = 3\n"
    assert [d["path"] for k, d in events if k == "edit"] == ["a.py", "b.py"]
    assert "+    return 20" in res.text and "+y = 22" in res.text


def test_offsets_and_wrong_counts_are_tolerated(repo: Path) -> None:
    text = "--- a/a.py\n+++ b/a.py\n@@ -1,7 +1,9 @@\n def c():\n-    return 3\n+    return 30\n"
    res = patch(repo, text)
    assert res.ok, res.text
    assert "offset" in res.text
    assert (repo / "a.py").read_text().endswith("def c():\n    return 30\n")


def test_headerless_hunk_numbers_and_blank_context_lines_are_mended(repo: Path) -> None:
    text = (
        "--- a/a.py\n+++ b/a.py\n@@ @@\n     return 1\n\n\n"
        " def b():\n-    return 2\n+    return 5\n"
    )
    res = patch(repo, text)
    assert res.ok, res.text
    assert "return 5" in (repo / "a.py").read_text()


def test_failing_hunk_is_reported_and_nothing_is_written(repo: Path) -> None:
    bad = TWO_FILES.replace(" z = 3\n", " z = 4\n")
    res = patch(repo, bad)
    assert not res.ok
    assert "nothing was written" in res.text
    assert "b.py: hunk 1 (@@ -1,3 @@)" in res.text and "not found" in res.text
    assert (repo / "a.py").read_text() == A and (repo / "b.py").read_text() == B


def test_patch_that_breaks_the_parse_is_refused(repo: Path) -> None:
    text = "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n-def a():\n+def a(:\n     return 1\n"
    res = patch(repo, text)
    assert not res.ok and "edit refused" in res.text and "a.py at line 1" in res.text
    assert (repo / "a.py").read_text() == A


def test_create_delete_and_rename(repo: Path) -> None:
    text = (
        "--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1,2 @@\n+def new():\n+    return 0\n"
        "--- a/b.py\n+++ /dev/null\n@@ -1,3 +0,0 @@\n-x = 1\n-y = 2\n-z = 3\n"
        "diff --git a/a.py b/c.py\n--- a/a.py\n+++ b/c.py\n"
        "@@ -1,2 +1,2 @@\n def a():\n-    return 1\n+    return 9\n"
    )
    res = patch(repo, text)
    assert res.ok, res.text
    assert (repo / "pkg" / "new.py").read_text() == "def new():\n    return 0\n"
    assert not (repo / "b.py").exists()
    assert not (repo / "a.py").exists() and "return 9" in (repo / "c.py").read_text()


def test_creating_an_existing_file_is_refused(repo: Path) -> None:
    res = patch(repo, "--- /dev/null\n+++ b/b.py\n@@ -0,0 +1 @@\n+q = 1\n")
    assert not res.ok and "already exists" in res.text


def test_crlf_file_keeps_crlf(repo: Path) -> None:
    (repo / "w.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    res = patch(repo, "--- a/w.py\n+++ b/w.py\n@@ -1,2 +1,3 @@\n a = 1\n+c = 3\n b = 2\n")
    assert res.ok, res.text
    assert (repo / "w.py").read_bytes() == b"a = 1\r\nc = 3\r\nb = 2\r\n"


def test_no_newline_at_end_of_file(repo: Path) -> None:
    (repo / "n.py").write_text("a = 1\nb = 2")
    text = (
        "--- a/n.py\n+++ b/n.py\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n"
        "\\ No newline at end of file\n+b = 3\n\\ No newline at end of file\n"
    )
    res = patch(repo, text)
    assert res.ok, res.text
    assert (repo / "n.py").read_text() == "a = 1\nb = 3"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", "patch is empty"),
        ("just some words\n", "names no files"),
        (
            "--- a/../../etc/x.py\n+++ b/../../etc/x.py\n@@ -1 +1 @@\n-a\n+b\n",
            "outside the workspace",
        ),
        ("--- a/missing.py\n+++ b/missing.py\n@@ -1 +1 @@\n-a\n+b\n", "does not exist"),
    ],
)
def test_bad_patches_get_clear_errors(repo: Path, text: str, expect: str) -> None:
    res = patch(repo, text)
    assert not res.ok and expect in res.text


def test_binary_target_is_refused(repo: Path) -> None:
    (repo / "bin.py").write_bytes(b"\x00\x01")
    res = patch(repo, "--- a/bin.py\n+++ b/bin.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert not res.ok and "binary" in res.text


def test_normalize_patch_recounts_headers() -> None:
    out = normalize_patch("--- a/x\n+++ b/x\n@@ -3,9 +3,1 @@\n a\n-b\n+c\n+d\n")
    assert "@@ -3,2 +3,3 @@" in out


def test_cli_apply_patch(repo: Path, tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "k2lsp",
            "tool",
            "apply_patch",
            "--json",
            json.dumps({"patch": TWO_FILES}),
            "--repo",
            str(repo),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Applied patch to 2 file(s)" in proc.stdout
    bad = TWO_FILES.replace("-y = 2", "-y = 7")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "k2lsp",
            "tool",
            "apply_patch",
            "--json",
            json.dumps({"patch": bad}),
            "--repo",
            str(repo),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 1 and "nothing was written" in proc.stdout


def test_no_prefix_diff_of_file_under_folder_named_b(repo: Path) -> None:
    (repo / "b").mkdir()
    (repo / "b" / "x.py").write_text("v = 1\n")
    res = patch(repo, "--- b/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-v = 1\n+v = 2\n")
    assert res.ok, res.text
    assert (repo / "b" / "x.py").read_text() == "v = 2\n"


def test_non_utf8_target_is_refused(repo: Path) -> None:
    (repo / "l.py").write_bytes("s = 'caf\u00e9'\n".encode("latin-1"))
    res = patch(repo, "--- a/l.py\n+++ b/l.py\n@@ -1 +1 @@\n-s = 1\n+s = 2\n")
    assert not res.ok and "not valid UTF-8" in res.text
