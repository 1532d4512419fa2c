"""A run's saved patch follows one rule in both front-ends (`k2lsp.runs.patchfile`): the same
file name and place, the same private modes, the same `git apply`-able text, and its path in
what the user is told. The CLI runs as a subprocess and the language server over stdio, both
against the fake K2 host."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.runs.patchfile import patch_path, save_patch
from tests.lsp_fixtures import FIX_ADD, make_project, server_env, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)

DIFF = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
K2LSP = [sys.executable, "-m", "k2lsp"]
FLAGS = ["--sandbox", "none", "--json", "--output", "patch"]
TYPED_ADD = "def add(a, b):\n    return a - b  # typed\n\n\ndef mul(a, b):\n    return a * b\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_patch_is_private_whole_and_named_after_the_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "patches").mkdir(parents=True, mode=0o755)  # made by an older k2lsp: too open
    path = save_patch("old\n", state, "r1")
    path = save_patch(DIFF, state, "r1")  # saving again replaces the file
    assert path == patch_path(state, "r1") == (state / "patches" / "r1.patch").absolute()
    assert path.read_text() == DIFF
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["r1.patch"]  # no temp file left


def test_a_patch_file_the_user_names_is_written_like_a_shell_redirect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mask = os.umask(0o022)
    try:
        path = save_patch(DIFF, tmp_path / "state", "r1", target=Path("out/fix.patch"))
    finally:
        os.umask(mask)
    assert path == tmp_path / "out" / "fix.patch" and path.is_absolute()
    assert path.read_text() == DIFF and _mode(path) == 0o644
    assert not (tmp_path / "state").exists()  # nothing in the state dir


def _git_apply_check(patch: Path, project: Path) -> None:
    subprocess.run(
        ["git", "apply", "--check", "-p1", str(patch)], cwd=project, check=True, timeout=60
    )


def _check_saved(path: Path, state: Path, run_id: str, told: str, project: Path) -> str:
    """The one rule, whichever front-end saved `path`; the patch text."""
    assert path == state / "patches" / f"{run_id}.patch"
    assert str(path) in told  # the user is told where it is
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    text = path.read_text()
    assert text.startswith("diff --git a/calc.py b/calc.py\n") and "+    return a + b\n" in text
    _git_apply_check(path, project)
    return text


async def test_cli_and_editor_save_the_same_patch_in_the_same_place(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = home / "state" / "k2lsp"
    with FakeK2Server([], models=["kimi-k2-thinking"]) as fake:
        # the CLI: --json keeps stdout for events, so the patch is saved, not printed
        cli_project = make_project(tmp_path / "cli" / "proj")
        fake.add(Reply(tool_calls=[FIX_ADD]), Reply(content="fixed add."))
        proc = subprocess.run(
            [*K2LSP, "--task", "fix add", "--repo", str(cli_project), *FLAGS],
            env=server_env(fake.base_url, home),
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert proc.returncode == 0, proc.stderr
        end = json.loads(proc.stdout.splitlines()[-1])
        assert end["type"] == "run_finished" and end["outcome"] == "success", end
        cli_run = end["run_id"]
        cli_text = _check_saved(
            patch_path(state, cli_run), state, cli_run, end["summary"], cli_project
        )
        assert "return a - b" in (cli_project / "calc.py").read_text()  # patch mode: untouched

        # the editor: the user types on the fixed line meanwhile, so delivery is a conflict
        project = make_project(tmp_path / "lsp" / "proj")
        editor = await start_editor(project, fake.base_url, home)
        try:
            uri = editor.open("calc.py")

            def type_once() -> None:
                if editor.docs[uri][1] != TYPED_ADD:
                    editor.change(uri, TYPED_ADD)

            editor.before_apply = type_once
            fake.add(Reply(tool_calls=[FIX_ADD]), Reply(content="fixed add."))
            started = await editor.command("k2lsp.task", {"task": "fix add"})
            info = await editor.finished(started["runId"])
        finally:
            await stop_editor(editor)
    assert info["delivery"] == "conflict", info
    last = editor.deliveries[-1]
    lsp_text = _check_saved(
        Path(last["patchPath"]), state, started["runId"], last["message"], project
    )
    assert lsp_text == cli_text  # same change, same patch, whichever front-end saved it
