"""Conversations over LSP (real server over stdio, fake K2 over HTTP): `k2lsp.ask` /
`k2lsp.task` return a conversationId, accept it to continue with the earlier history and the
same run copy, carry context items, and refuse what cannot be continued."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests.lsp_fixtures import FIX_ADD, Editor, make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(240)
FIX_MUL = ("edit_file", {"path": "calc.py", "old_text": "return a * b", "new_text": "return b * a"})


@pytest.fixture
async def editor(tmp_path: Path, fake: FakeK2Server) -> AsyncIterator[Editor]:
    root = make_project(tmp_path / "proj")
    (root / ".env").write_text("TOKEN=abc\n")
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    yield ed
    await stop_editor(ed)


async def test_follow_up_continues_the_conversation_with_context(
    editor: Editor, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="It subtracts, a bug.", content="add returns a minus b."))
    uri = editor.open("calc.py")
    first = await editor.command("k2lsp.ask", {"question": "what does add do?"})
    assert first["conversationId"] == first["runId"]
    info = await editor.finished(first["runId"])
    assert info["outcome"] == "success" and info["conversationId"] == first["runId"]
    original = editor.text("calc.py")
    editor.change(uri, "# UNSAVED note\n" + original)
    fake.add(
        Reply(reasoning="Fix both.", tool_calls=[FIX_ADD, FIX_MUL]),
        Reply(reasoning="ok", content="Fixed add."),
    )
    context = [
        {"kind": "buffer", "uri": uri},
        {
            "kind": "diagnostics",
            "path": "calc.py",
            "items": [
                {"line": 2, "message": "add subtracts", "severity": "error", "source": "mylint"}
            ],
        },
        {"kind": "file", "path": "tests/test_calc.py"},
        {"kind": "selection", "path": "calc.py", "startLine": 5, "endLine": 6},
    ]
    second = await editor.command(
        "k2lsp.task",
        {"task": "now fix it", "conversationId": first["conversationId"], "context": context},
    )
    assert second["conversationId"] == first["conversationId"] != second["runId"]
    info = await editor.finished(second["runId"])
    assert info["outcome"] == "success" and info["delivery"] in ("applied", "merged"), info
    assert fake.rejected == []
    body = fake.requests[1]["messages"]
    assert body[1] == fake.requests[0]["messages"][1]  # the first question, byte for byte
    earlier = [m for m in body if m["role"] == "assistant"]
    assert earlier[0]["reasoning_content"] == "It subtracts, a bug."
    assert earlier[0]["content"] == "add returns a minus b."
    assert "read-only" not in body[0]["content"]  # the task's system prompt, not the ask's
    tools = {t["function"]["name"] for t in fake.requests[1]["tools"]}
    assert "edit_file" in tools
    last = body[-1]["content"]
    assert body[-1]["role"] == "user" and "now fix it" in last
    assert "Current buffer calc.py (editor buffer" in last and "# UNSAVED note" in last
    assert "[mylint]: add subtracts" in last and "def test_add" in last
    assert "Selection calc.py lines 5-6" in last
    text = editor.text("calc.py")  # merged around the unsaved line the run copy never saw
    assert "return a + b" in text and "return b * a" in text and "# UNSAVED note" in text


async def test_follow_up_sees_the_current_buffer_version(
    editor: Editor, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="ok", content="Seen."))
    uri = editor.open("calc.py")
    first = await editor.command("k2lsp.ask", {"question": "hi"})
    await editor.finished(first["runId"])
    editor.change(uri, "def add(a, b):\n    return a - b  # NOW\n")
    version = editor.docs[uri][0]
    fake.add(Reply(reasoning="ok", content="Seen again."))
    second = await editor.command(
        "k2lsp.ask",
        {
            "question": "and now?",
            "conversationId": first["conversationId"],
            "context": [{"kind": "buffer", "uri": uri, "version": version}],
        },
    )
    await editor.finished(second["runId"])
    last = fake.requests[1]["messages"][-1]["content"]
    assert f"version {version}" in last and "# NOW" in last


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ({"conversationId": "20990101-000000-nope"}, "unknown conversation"),
        ({"conversationId": "../../x"}, "not a conversation id"),
        ({"context": [{"kind": "file", "path": "../outside.py"}]}, "outside the workspace"),
        ({"context": [{"kind": "file", "path": ".env"}]}, "secret denylist"),
        ({"context": [{"kind": "clipboard"}]}, "unknown context item kind"),
    ],
)
async def test_bad_follow_ups_are_refused_before_any_request(
    editor: Editor, fake: FakeK2Server, arg: dict[str, object], message: str
) -> None:
    (editor.root.parent / "outside.py").write_text("SECRET = 1\n")
    with pytest.raises(Exception, match=message):
        await editor.command("k2lsp.ask", {"question": "more", **arg})
    assert fake.requests == []


async def test_a_collected_conversation_says_so(
    editor: Editor, fake: FakeK2Server, tmp_path: Path
) -> None:
    fake.add(Reply(reasoning="ok", content="Seen."))
    first = await editor.command("k2lsp.ask", {"question": "hi"})
    await editor.finished(first["runId"])
    state = tmp_path / "home" / "state" / "k2lsp"
    record = json.loads((state / "conversations" / f"{first['conversationId']}.json").read_text())
    assert record["messages"][-1]["content"] == "Seen."
    gc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "k2lsp", "gc", "--state-dir", str(state), "--conversations"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gc.returncode == 0, gc.stderr
    with pytest.raises(Exception, match="can no longer be continued: its run copy was collected"):
        await editor.command(
            "k2lsp.ask", {"question": "more", "conversationId": first["conversationId"]}
        )
    assert len(fake.requests) == 1


async def test_a_follow_up_while_its_conversation_runs_is_refused(
    editor: Editor, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="Thinking " * 50, content="Later.", hold=True, chunk_size=20))
    first = await editor.command("k2lsp.ask", {"question": "hi"})
    assert await asyncio.to_thread(fake.wait_held, 120)
    with pytest.raises(Exception, match=f"conversation '{first['conversationId']}' is busy"):
        await editor.command(
            "k2lsp.task", {"task": "more", "conversationId": first["conversationId"]}
        )
    with pytest.raises(Exception, match="starts a new conversation"):
        await editor.command(
            "k2lsp.explain",
            {"uri": editor.open("calc.py"), "conversationId": first["conversationId"]},
        )
    fake.release()
    info = await editor.finished(first["runId"])
    assert info["outcome"] == "success" and len(fake.requests) == 1
