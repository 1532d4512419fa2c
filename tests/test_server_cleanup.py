"""Server start removes what runs of dead processes left behind (run folder, branch)
and never touches a run a live process holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.model.fake_server import FakeK2Server
from tests.git_helpers import git, make_repo
from tests.lsp_fixtures import make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)

CREATE = (
    "import os, sys; from k2lsp.runcopy import RunCopy; "
    "rc = RunCopy.create(sys.argv[1], sys.argv[2], state_dir=sys.argv[3]); "
    "print('ready', flush=True); "
    "sys.stdin.readline() if sys.argv[4] == 'live' else os._exit(0)"
)


def _run_in_process(repo: Path, run_id: str, state: Path, kind: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CREATE, str(repo), run_id, str(state), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def test_server_start_removes_runs_of_dead_processes_only(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    make_repo(root, {})  # the project is a git repository with a commit
    home = tmp_path / "home"
    state = home / "state" / "k2lsp"
    dead = _run_in_process(root, "crashed", state, "dead")
    assert dead.wait(60) == 0
    live = _run_in_process(root, "alive", state, "live")
    try:
        assert {"k2lsp/crashed", "k2lsp/alive"} <= set(git(root, "branch", "--list").split())
        with FakeK2Server([], models=["kimi-k2-thinking"]) as srv:
            editor = await start_editor(root, srv.base_url, home)
            try:
                await editor.wait_for(lambda: "removed run crashed" in editor.logs(), 60)
            finally:
                await stop_editor(editor)
        assert not (state / "runs" / "crashed").exists()
        branches = set(git(root, "branch", "--list").split())
        assert "k2lsp/crashed" not in branches
        assert "crashed" not in git(root, "worktree", "list")
        # the live process's run is untouched
        assert (state / "runs" / "alive" / "run.json").is_file()
        assert "k2lsp/alive" in branches and (state / "runs" / "alive" / "copy").is_dir()
    finally:
        assert live.stdin is not None
        live.stdin.write("\n")
        live.stdin.close()
        live.wait(60)
