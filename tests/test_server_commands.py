"""End-to-end: every k2lsp command over stdio against the real server and the fake K2 host."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from k2lsp.fake.server import FakeK2Server, Reply
from tests.lsp_fixtures import FIX_ADD, Editor, make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(180)


def sel(start: int, end: int) -> dict[str, Any]:
    return {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}}


async def test_task_returns_at_once_and_its_edit_lands_in_the_buffer(
    editor: Editor, fake: FakeK2Server
) -> None:
    fake.add(
        Reply(reasoning="Looking at add.", tool_calls=[FIX_ADD], hold=True),
        Reply(reasoning="Fixed.", content="add now adds."),
    )
    uri = editor.open("calc.py")
    started = await editor.command("k2lsp.task", {"task": "fix add", "uri": uri})
    assert started["runId"] and started["transcriptUri"].endswith(".md")
    assert await asyncio.to_thread(fake.wait_held, 120)  # the answer came while the model streams
    status = await editor.command("k2lsp.status")
    assert status["runs"][0]["state"] == "running"
    fake.release()
    info = await editor.finished(started["runId"])
    assert info["outcome"] == "success" and info["delivery"] == "applied"
    assert "return a + b" in editor.text("calc.py")
    assert "return a - b" in (editor.root / "calc.py").read_text()  # buffer, not disk
    edit = editor.applied[0].document_changes[0]
    assert isinstance(edit, types.TextDocumentEdit) and edit.text_document.version == 1
    assert editor.deliveries[-1]["status"] == "applied"


async def test_task_starts_from_unsaved_buffers(editor: Editor, fake: FakeK2Server) -> None:
    fake.add(
        Reply(reasoning="Read it.", tool_calls=[("read_file", {"path": "calc.py"})]),
        Reply(reasoning="ok", content="Seen."),
    )
    uri = editor.open("calc.py")
    editor.change(uri, "def add(a, b):\n    return a - b  # UNSAVED\n")
    started = await editor.command("k2lsp.task", {"task": "look at add"})
    await editor.finished(started["runId"])
    tool_reply = next(m for m in fake.requests[1]["messages"] if m["role"] == "tool")
    assert "# UNSAVED" in tool_reply["content"]


async def test_ask_streams_an_answer_and_never_edits(editor: Editor, fake: FakeK2Server) -> None:
    fake.add(Reply(reasoning="The function subtracts.", content="It returns a minus b."))
    uri = editor.open("calc.py")
    started = await editor.command(
        "k2lsp.ask", {"question": "what does add do?", "uri": uri, "range": sel(0, 2)}
    )
    info = await editor.finished(started["runId"])
    assert info["mode"] == "ask" and info["delivery"] == "nothing"
    assert editor.applied == []
    text = "".join(e["text"] for e in editor.events(started["runId"]) if e["type"] == "content")
    assert text == "It returns a minus b."
    assert any(m.message == "K2: It returns a minus b." for m in editor.client.messages)
    body = fake.requests[0]
    tool_names = {t["function"]["name"] for t in body.get("tools", [])}
    assert "edit_file" not in tool_names
    prompt = "\n".join(str(m.get("content")) for m in body["messages"])
    assert "what does add do?" in prompt and "return a - b" in prompt


@pytest.mark.parametrize(
    ("command", "arg", "expect"),
    [
        (
            "k2lsp.fixDiagnostic",
            {"diagnostic": {"range": sel(1, 1), "message": "add subtracts", "source": "mylint"}},
            "add subtracts",
        ),
        ("k2lsp.explain", {"range": sel(0, 2)}, "Explain the code in calc.py lines 1-2"),
        (
            "k2lsp.refactor",
            {"range": sel(0, 2), "instruction": "use operator.add"},
            "use operator.add",
        ),
        ("k2lsp.writeTests", {"range": sel(4, 6)}, "Write tests for the code in calc.py lines 5-6"),
        (
            "k2lsp.fixFailingTest",
            {"testName": "test_add", "framework": "pytest"},
            "Make the failing test test_add (pytest)",
        ),
    ],
)
async def test_each_run_command_builds_its_task(
    editor: Editor, fake: FakeK2Server, command: str, arg: dict[str, Any], expect: str
) -> None:
    fake.add(Reply(reasoning="ok", content="Done."))
    uri = editor.open("calc.py")
    started = await editor.command(command, {"uri": uri, **arg})
    info = await editor.finished(started["runId"])
    # explain is read-only: answered is success; the editing commands changed nothing
    assert info["outcome"] == ("success" if command == "k2lsp.explain" else "no_change")
    prompt = "\n".join(str(m.get("content")) for m in fake.requests[0]["messages"])
    assert expect in prompt
    assert "return a - b" in prompt  # the document excerpt is in the context


async def test_write_tests_creates_a_file_through_the_editor(
    editor: Editor, fake: FakeK2Server
) -> None:
    new = "from calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
    fake.add(
        Reply(
            reasoning="A new test file.",
            tool_calls=[("create_file", {"path": "tests/test_mul.py", "content": new})],
        ),
        Reply(reasoning="ok", content="Added tests."),
    )
    uri = editor.open("calc.py")
    started = await editor.command("k2lsp.writeTests", {"uri": uri, "range": sel(4, 6)})
    info = await editor.finished(started["runId"])
    assert info["delivery"] == "applied", editor.client.messages
    kinds = [type(c).__name__ for c in editor.applied[0].document_changes or []]
    assert kinds == ["CreateFile", "TextDocumentEdit"]
    assert (editor.root / "tests" / "test_mul.py").read_text() == new


async def test_undo_restores_the_buffer_through_the_editor(
    editor: Editor, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(reasoning="ok", content="ok"))
    uri = editor.open("calc.py")
    before = editor.text("calc.py")
    started = await editor.command("k2lsp.task", {"task": "fix add"})
    await editor.finished(started["runId"])
    assert editor.text("calc.py") != before
    undone = await editor.command("k2lsp.undo", {})
    assert undone == {"runId": started["runId"], "restored": ["calc.py"]}
    assert editor.text("calc.py") == before
    assert editor.docs[uri][0] == 3  # applied as two editor edits: undoable in the editor too
    with pytest.raises(Exception, match="nothing to undo"):
        await editor.command("k2lsp.undo", {})


async def test_status_reports_runs_tokens_and_cost(tmp_path: Path, fake: FakeK2Server) -> None:
    prices = {"input": 0.6, "output": 2.5, "input_cache_hit": 0.15}
    ed = await start_editor(
        make_project(tmp_path / "proj"), fake.base_url, tmp_path / "home",
        init_options={"prices": prices},
    )  # fmt: skip
    try:
        usage = {"prompt_tokens": 1000, "completion_tokens": 50, "cached_tokens": 400}
        fake.add(Reply(reasoning="r", content="a", **usage))
        started = await ed.command("k2lsp.ask", {"question": "hi?"})
        await ed.finished(started["runId"])
        status = await ed.command("k2lsp.status")
    finally:
        await stop_editor(ed)
    assert status["active"] == 0 and len(status["runs"]) == 1
    assert status["promptTokens"] == 1000 and status["completionTokens"] == 50
    assert status["cachedTokens"] == 400 and status["runs"][0]["steps"] >= 1
    expected = (600 * 0.6 + 400 * 0.15 + 50 * 2.5) / 1e6
    assert status["costUsd"] == pytest.approx(expected, rel=1e-3)
    assert any("1 run(s), 0 active, 1,050 tokens" in m.message for m in ed.client.messages)


async def test_preview_waits_for_accept_then_applies(tmp_path: Path, fake: FakeK2Server) -> None:
    root = make_project(tmp_path / "proj")
    ed = await start_editor(root, fake.base_url, tmp_path / "home", init_options={"preview": True})
    try:
        fake.add(
            Reply(reasoning="fix", tool_calls=[FIX_ADD]),
            Reply(reasoning="ok", content="ok"),
            Reply(reasoning="fix", tool_calls=[FIX_ADD]),
            Reply(reasoning="ok", content="ok"),
        )
        ed.open("calc.py")
        first = await ed.command("k2lsp.task", {"task": "fix add"})
        await ed.wait_for(lambda: any(d["status"] == "preview" for d in ed.deliveries))
        preview = next(d for d in ed.deliveries if d["status"] == "preview")
        assert any(doc.uri == preview["diffUri"] for doc in ed.client.shown_documents)
        diff = Path(preview["diffUri"].removeprefix("file://")).read_text()
        assert "+    return a + b" in diff
        assert ed.applied == []
        await ed.command("k2lsp.reject", {"runId": first["runId"]})
        assert (await ed.finished(first["runId"]))["delivery"] == "rejected"
        assert ed.applied == [] and "a - b" in ed.text("calc.py")
        second = await ed.command("k2lsp.task", {"task": "fix add"})
        await ed.wait_for(lambda: sum(d["status"] == "preview" for d in ed.deliveries) == 2)
        await ed.command("k2lsp.accept", {})
        assert (await ed.finished(second["runId"]))["delivery"] == "applied"
        assert "a + b" in ed.text("calc.py")
    finally:
        await stop_editor(ed)


@pytest.mark.parametrize(
    ("command", "arg", "message"),
    [
        ("k2lsp.ask", {}, "the question is empty"),
        ("k2lsp.task", {"task": "  "}, "the task is empty"),
        ("k2lsp.explain", {}, "needs the document"),
        ("k2lsp.fixDiagnostic", {"uri": "URI"}, "the diagnostic is missing"),
        ("k2lsp.fixFailingTest", {"uri": "URI"}, "the test name is missing"),
        ("k2lsp.explain", {"uri": "file:///elsewhere/x.py"}, "outside the workspace"),
        ("k2lsp.cancel", {"runId": "nope"}, "no run 'nope'"),
        ("k2lsp.accept", {}, "no preview is waiting"),
    ],
)
async def test_bad_command_arguments_are_refused_with_a_clear_message(
    editor: Editor, fake: FakeK2Server, command: str, arg: dict[str, Any], message: str
) -> None:
    arg = {k: (editor.uri("calc.py") if v == "URI" else v) for k, v in arg.items()}
    with pytest.raises(JsonRpcException) as refused:
        await editor.command(command, arg)
    # the request's error is the one place the user reads it: plain words, no class name,
    # and not repeated as a window/showMessage
    assert refused.value.code == -32803 and message in refused.value.message
    assert refused.value.message.startswith("K2: ") and "Error" not in refused.value.message
    assert not any(message in m.message for m in editor.client.messages)
    assert fake.requests == []


@pytest.mark.parametrize("resource_ops", [True, False])
async def test_deleted_file_goes_through_the_editor_when_it_can(
    tmp_path: Path, fake: FakeK2Server, resource_ops: bool
) -> None:
    from tests.lsp_fixtures import capabilities

    fake.add(
        Reply(reasoning="remove it", tool_calls=[("delete_file", {"path": "tests/test_calc.py"})]),
        Reply(reasoning="ok", content="Removed."),
    )
    caps = capabilities(stream=True, resource_ops=resource_ops)
    root = make_project(tmp_path / "proj")
    ed = await start_editor(root, fake.base_url, tmp_path / "home", caps=caps)
    try:
        run_id = (await ed.command("k2lsp.task", {"task": "remove the test"}))["runId"]
        assert (await ed.finished(run_id))["delivery"] == "applied"
    finally:
        await stop_editor(ed)
    assert not (root / "tests" / "test_calc.py").exists()
    if resource_ops:
        ops = ed.applied[0].document_changes or []
        assert [type(op).__name__ for op in ops] == ["DeleteFile"]
    else:
        assert ed.applied == []  # nothing the editor could do: the server removed the file


def _git_project(root: Path) -> Path:
    """make_project as a committed git repository (checkpoints then live in .git/k2lsp)."""
    from git_helpers import git

    make_project(root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


async def test_cli_undo_after_saving_gives_back_the_unsaved_buffer(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    from k2lsp.runs.git import undo

    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(reasoning="ok", content="ok"))
    root = _git_project(tmp_path / "proj")
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    try:
        uri = ed.open("calc.py")
        unsaved = ed.text("calc.py") + "\n\ndef neg(a):  # typed, not saved yet\n    return -a\n"
        ed.change(uri, unsaved)
        run_id = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
        assert (await ed.finished(run_id))["delivery"] == "applied"
        delivered = ed.text("calc.py")
        assert "return a + b" in delivered and "def neg" in delivered
    finally:
        await stop_editor(ed)
    (root / "calc.py").write_text(delivered, encoding="utf-8")  # the user saves
    undo(root)  # `k2lsp undo`
    assert (root / "calc.py").read_text(encoding="utf-8") == unsaved  # not the old disk text


@pytest.mark.parametrize("resource_ops", [True, False])
async def test_a_folder_turned_into_a_link_out_of_the_workspace_is_never_written_through(
    tmp_path: Path, fake: FakeK2Server, resource_ops: bool
) -> None:
    from tests.lsp_fixtures import capabilities

    new = {"path": "lib/x.py", "content": "x = 1\n"}
    fake.add(
        Reply(reasoning="a new module", tool_calls=[("create_file", new)]),
        Reply(reasoning="ok", content="Added.", hold=True),
    )
    root = make_project(tmp_path / "proj")
    outside = tmp_path / "outside"
    outside.mkdir()
    caps = capabilities(stream=True, resource_ops=resource_ops)
    ed = await start_editor(root, fake.base_url, tmp_path / "home", caps=caps)
    try:
        run_id = (await ed.command("k2lsp.task", {"task": "add lib/x.py"}))["runId"]
        assert await asyncio.to_thread(fake.wait_held, 120)  # the run has written lib/x.py
        (root / "lib").symlink_to(outside, target_is_directory=True)  # the user's tree moves on
        fake.release()
        info = await ed.finished(run_id)
    finally:
        await stop_editor(ed)
    assert info["delivery"] == "conflict" and info["outcome"] == "edit_conflict"
    assert list(outside.iterdir()) == [] and ed.applied == []
    assert "outside the workspace" in ed.deliveries[-1]["message"]
    assert Path(ed.deliveries[-1]["patchPath"]).is_file()


async def test_delivery_stops_when_the_checkpoint_cannot_be_recorded(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(reasoning="ok", content="ok"))
    root = _git_project(tmp_path / "proj")
    (root / ".git" / "k2lsp").write_text("not a folder\n", encoding="utf-8")  # blocks checkpoints
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    try:
        ed.open("calc.py")
        before = ed.text("calc.py")
        run_id = (await ed.command("k2lsp.task", {"task": "fix add"}))["runId"]
        info = await ed.finished(run_id)
    finally:
        await stop_editor(ed)
    assert info["delivery"] == "conflict" and info["outcome"] == "edit_conflict"
    assert ed.applied == [] and ed.text("calc.py") == before
    assert (root / "calc.py").read_text(encoding="utf-8") == before
    message = ed.deliveries[-1]["message"]
    assert "could not record the undo checkpoint" in message and "nothing was applied" in message


async def test_a_change_set_adding_the_key_is_not_applied_and_the_copy_is_kept(
    editor: Editor, fake: FakeK2Server
) -> None:
    from tests.lsp_fixtures import API_KEY

    leak = f'API = "{API_KEY}"\n'
    fake.add(
        Reply(reasoning="w", tool_calls=[("create_file", {"path": "leak.py", "content": leak})]),
        Reply(reasoning="ok", content="Done."),
    )
    uri = editor.open("calc.py")
    started = await editor.command("k2lsp.task", {"task": "do it", "uri": uri})
    info = await editor.finished(started["runId"])
    assert info["delivery"] == "refused" and info["outcome"] == "usage_error", info
    assert not editor.applied and not (editor.root / "leak.py").exists()
    shown = [m.message for m in editor.client.messages]
    assert any("leak.py:1" in m and "secret" in m for m in shown), shown
    assert all(API_KEY not in m for m in shown)
