"""A language server killed mid-run (SIGKILL: no shutdown, no clean-up) leaves its run copy,
worktree and `k2lsp/<id>` branch behind; the next server start removes them, while the run of
another server that is still alive (same repository, same state folder) is kept whole."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests.git_helpers import git, make_repo
from tests.lsp_fixtures import Editor, make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(240)
MODEL = "kimi-k2-thinking"


def _stall() -> Reply:
    return Reply(reasoning="Pondering " * 50, content="never", hold=True, chunk_size=40)


async def _start_held_run(ed: Editor, state: Path, srv: FakeK2Server, left: int) -> str:
    """Start a task and wait until its model stream is held open (the run copy exists)."""
    uri = ed.open("calc.py")
    run_id = str((await ed.command("k2lsp.task", {"task": "fix add", "uri": uri}))["runId"])
    await ed.wait_for(
        lambda: srv.remaining == left and (state / "runs" / run_id / "run.json").is_file()
    )
    await asyncio.sleep(0.5)  # the stream is open and held by now
    return run_id


def _branches(root: Path) -> set[str]:
    return set(git(root, "branch", "--list", "--format=%(refname:short)").split())


async def test_killed_server_run_is_collected_at_next_start_live_one_kept(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    make_repo(root, {})
    home = tmp_path / "home"
    state = home / "state" / "k2lsp"
    with FakeK2Server([_stall(), _stall()], models=[MODEL]) as srv:
        doomed = await start_editor(root, srv.base_url, home, stream=False)
        dead_id = await _start_held_run(doomed, state, srv, left=1)
        live = await start_editor(root, srv.base_url, home, stream=False)
        try:
            live_id = await _start_held_run(live, state, srv, left=0)
            assert {f"k2lsp/{dead_id}", f"k2lsp/{live_id}"} <= _branches(root)
            server = doomed.client._server
            assert server is not None
            os.kill(server.pid, signal.SIGKILL)  # no shutdown, no finally blocks
            await server.wait()
            assert (state / "runs" / dead_id / "run.json").is_file()  # left behind
            fresh = await start_editor(root, srv.base_url, home, stream=False)
            try:
                await fresh.wait_for(lambda: f"removed run {dead_id}" in fresh.logs(), 60)
            finally:
                await stop_editor(fresh)
            assert not (state / "runs" / dead_id).exists()
            assert f"k2lsp/{dead_id}" not in _branches(root)
            assert dead_id not in git(root, "worktree", "list")
            # the live server's run is untouched: its folder, its copy, its branch
            assert (state / "runs" / live_id / "run.json").is_file()
            assert (state / "runs" / live_id / "copy").is_dir()
            assert f"k2lsp/{live_id}" in _branches(root)
            assert live_id not in fresh.logs()
            assert (await live.command("k2lsp.status", {}))["active"] == 1
        finally:
            srv.release()
            await stop_editor(live)
    assert (root / "calc.py").read_text().count("return a - b") == 1  # the user's tree untouched
