"""End-to-end: cancellation mid-stream, user edits during a run, a client that rejects the edit,
and two runs at once. Nothing the user typed is ever overwritten."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types

from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.runs.checkpoint import list_checkpoints
from k2lsp.server.landing import ATTEMPTS
from tests.lsp_fixtures import FIX_ADD, Editor, make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)
ORIGINAL = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"


async def _start_held(editor: Editor, fake: FakeK2Server) -> str:
    """A run that has edited calc.py in its copy and is now streaming its next reply."""
    fake.add(
        Reply(reasoning="fix add", tool_calls=[FIX_ADD]),
        Reply(reasoning="Checking once more " * 20, content="Fixed.", hold=True),
    )
    editor.open("calc.py")
    run_id: str = (await editor.command("k2lsp.task", {"task": "fix add"}))["runId"]
    assert await asyncio.to_thread(fake.wait_held, 120)
    return run_id


@pytest.mark.parametrize("how", ["command", "progress"])
async def test_cancel_mid_stream_applies_nothing(
    editor: Editor, fake: FakeK2Server, how: str
) -> None:
    run_id = await _start_held(editor, fake)
    if how == "command":
        assert await editor.command("k2lsp.cancel", {"runId": run_id}) == {"cancelled": [run_id]}
    else:
        editor.client.window_work_done_progress_cancel(
            types.WorkDoneProgressCancelParams(token=f"k2lsp-{run_id}")
        )
    info = await editor.finished(run_id)
    assert info["state"] == "cancelled" and info["outcome"] == "cancelled"
    assert editor.applied == [] and editor.text("calc.py") == ORIGINAL
    assert (editor.root / "calc.py").read_text() == ORIGINAL
    await editor.wait_for(lambda: any(e["type"] == "run_finished" for e in editor.events(run_id)))
    last = editor.events(run_id)[-1]
    assert last["type"] == "run_finished" and last["outcome"] == "cancelled"
    await editor.wait_for(
        lambda: isinstance(
            editor.client.progress_reports[f"k2lsp-{run_id}"][-1], types.WorkDoneProgressEnd
        )
    )
    assert await editor.command("k2lsp.cancel", {}) == {"cancelled": []}


async def test_user_edit_elsewhere_in_the_file_is_kept_and_the_change_rebased(
    editor: Editor, fake: FakeK2Server
) -> None:
    run_id = await _start_held(editor, fake)
    uri = editor.uri("calc.py")
    mine = ORIGINAL.replace("return a * b", "return b * a  # mine")
    editor.change(uri, mine)
    fake.release()
    info = await editor.finished(run_id)
    assert info["delivery"] == "merged" and info["outcome"] == "success"
    text = editor.text("calc.py")
    assert "return a + b" in text and "return b * a  # mine" in text
    edit = editor.applied[0].document_changes[0]
    assert isinstance(edit, types.TextDocumentEdit) and edit.text_document.version == 2


async def test_conflicting_user_edit_is_never_overwritten(
    editor: Editor, fake: FakeK2Server
) -> None:
    run_id = await _start_held(editor, fake)
    mine = ORIGINAL.replace("return a - b", "return sum((a, b))  # mine")
    editor.change(editor.uri("calc.py"), mine)
    fake.release()
    info = await editor.finished(run_id)
    assert info["delivery"] == "conflict" and info["outcome"] == "edit_conflict"
    assert editor.applied == [] and editor.text("calc.py") == mine
    delivery = editor.deliveries[-1]
    assert delivery["status"] == "conflict" and delivery["paths"] == ["calc.py"]
    assert "+    return a + b" in Path(delivery["patchPath"]).read_text()
    finished = [e for e in editor.events(run_id) if e["type"] == "run_finished"]
    assert finished[-1]["outcome"] == "edit_conflict"


async def test_edits_racing_every_apply_end_in_a_reported_conflict(
    editor: Editor, fake: FakeK2Server
) -> None:
    """Each edit is refused by version (the user typed again); k2lsp re-plans a few times, then
    reports a conflict and keeps the patch. (Typing once is merged: test_server_landing.py.)"""
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(reasoning="ok", content="ok"))
    uri = editor.open("calc.py")
    typed = ORIGINAL + "# typed while the edit was in flight\n"
    editor.before_apply = lambda: editor.change(uri, typed)
    run_id = (await editor.command("k2lsp.task", {"task": "fix add"}))["runId"]
    info = await editor.finished(run_id)
    assert info["delivery"] == "conflict" and editor.text("calc.py") == typed
    assert len(editor.applied) == ATTEMPTS  # each plan was sent once and refused
    message = editor.deliveries[-1]["message"]
    assert "kept changing" in message and "nothing was applied" in message


async def test_client_rejecting_apply_edit_keeps_the_patch(
    editor: Editor, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(reasoning="ok", content="ok"))
    editor.apply_edits = False
    editor.open("calc.py")
    run_id = (await editor.command("k2lsp.task", {"task": "fix add"}))["runId"]
    info = await editor.finished(run_id)
    assert info["delivery"] == "refused" and info["outcome"] == "edit_conflict"
    assert editor.text("calc.py") == ORIGINAL
    delivery = editor.deliveries[-1]
    assert "user declined" in delivery["message"]
    assert "+    return a + b" in Path(delivery["patchPath"]).read_text()
    assert any("refused" in m.message for m in editor.client.messages)
    state = editor.root.parent / "home" / "state" / "k2lsp"
    assert (state / "checkpoints").is_dir()  # one was recorded, then dropped with the edit
    assert list_checkpoints(editor.root, state_dir=state) == []  # `k2lsp undo` has nothing


async def test_two_concurrent_runs_both_deliver(tmp_path: Path) -> None:
    """Run A (fake host A) is held mid-stream while run B (host B) finishes; then A lands."""
    fix_mul = (
        "edit_file",
        {"path": "calc.py", "old_text": "return a * b", "new_text": "return a * b  # checked"},
    )
    host_a = FakeK2Server(
        [
            Reply(reasoning="fix add", tool_calls=[FIX_ADD]),
            Reply(reasoning="wait", content="A done.", hold=True),
        ]
    )
    host_b = FakeK2Server(
        [
            Reply(reasoning="touch mul", tool_calls=[fix_mul]),
            Reply(reasoning="ok", content="B done."),
        ]
    )
    url_a, url_b = host_a.start(), host_b.start()
    ed = await start_editor(make_project(tmp_path / "proj"), url_a, tmp_path / "home")
    try:
        ed.open("calc.py")
        run_a = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
        assert await asyncio.to_thread(host_a.wait_held, 120)
        ed.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"k2lsp": {"sandbox": "none", "baseUrl": url_b}}
            )
        )
        run_b = (await ed.command("k2lsp.task", {"task": "check mul"}))["runId"]
        assert (await ed.finished(run_b))["delivery"] == "applied"
        status = await ed.command("k2lsp.status")
        assert status["active"] == 1 and {r["runId"] for r in status["runs"]} == {run_a, run_b}
        host_a.release()
        assert (await ed.finished(run_a))["delivery"] == "merged"
        text = ed.text("calc.py")
        assert "return a + b" in text and "return a * b  # checked" in text
        assert {b["runId"] for b in ed.stream} == {run_a, run_b}
    finally:
        await stop_editor(ed)
        host_a.stop()
        host_b.stop()


async def test_shutdown_mid_run_cancels_it_and_removes_its_run_copy(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    ed = await start_editor(make_project(tmp_path / "proj"), fake.base_url, tmp_path / "home")
    await _start_held(ed, fake)
    runs = tmp_path / "home" / "state" / "k2lsp" / "runs"
    assert any(runs.iterdir())  # the run copy exists while the run is going
    await stop_editor(ed)
    assert ed.client._server is not None and ed.client._server.returncode == 0
    assert list(runs.iterdir()) == []
    assert ed.applied == [] and (ed.root / "calc.py").read_text() == ORIGINAL
