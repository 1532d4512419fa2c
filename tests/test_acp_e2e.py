"""End-to-end: `k2lsp acp` over stdio, driven by the ACP SDK's client side, against the
scripted fake K2 host and a real stdio MCP server (tests/mcp_demo_server.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from acp import resource_link_block, schema, spawn_agent_process, text_block

from k2lsp.fake.server import FakeK2Server, Reply
from tests.acp_helpers import (
    AGENT_CMD,
    MCP_SERVER,
    EditorClient,
    agent_env,
    client_caps,
    until,
)
from tests.git_helpers import make_repo
from tests.lsp_fixtures import FIX_ADD

pytestmark = pytest.mark.timeout(240)
CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
UNSAVED = "# unsaved note from the editor\n" + CALC
TOKEN = "demo-secret-token-0a1b2c3d4e5f"


def _project(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {"calc.py": CALC, "tests/test_calc.py": TEST})


def _mcp() -> list[Any]:
    env = [schema.EnvVariable(name="DEMO_TOKEN", value=TOKEN)]
    return [schema.McpServerStdio(name="demo", command=sys.executable, args=[MCP_SERVER], env=env)]


async def _session(conn: Any, proj: Path, mcp: list[Any] | None = None) -> str:
    init = await conn.initialize(protocol_version=1, client_capabilities=client_caps())
    assert init.agent_capabilities.load_session is True
    assert init.agent_capabilities.prompt_capabilities.embedded_context is True
    assert init.agent_capabilities.prompt_capabilities.image is False
    new = await conn.new_session(cwd=str(proj), mcp_servers=mcp or [])
    assert [m.id for m in new.modes.available_modes] == ["code", "ask", "plan"]
    return str(new.session_id)


async def test_prompt_with_mention_streams_calls_asks_and_edits_through_the_client(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(
        Reply(
            reasoning="First the release table.",
            tool_calls=[("mcp__demo__lookup_release", {"package": "zlib"})],
        ),
        Reply(reasoning="add subtracts; fix it.", tool_calls=[FIX_ADD]),
        Reply(reasoning="Done.", content="Fixed add in calc.py."),
    )
    proj = _project(tmp_path)
    calc = str(proj / "calc.py")
    editor = EditorClient(buffers={calc: UNSAVED})
    env = agent_env(fake.base_url, tmp_path / "home")
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj, _mcp())
        link = resource_link_block("test_calc.py", (proj / "tests" / "test_calc.py").as_uri())
        answer = await conn.prompt(
            session_id=sid, prompt=[text_block("Fix add in @calc.py please"), link]
        )
        assert answer.stop_reason == "end_turn"
        await until(lambda: any("Applied" in _text(u) for u in editor.of("agent_message_chunk")))
    kinds = editor.kinds()
    assert "agent_thought_chunk" in kinds and "plan" in kinds and "usage_update" in kinds
    assert "First the release table." in "".join(_text(u) for u in editor.of("agent_thought_chunk"))
    starts = {u.tool_call_id: u for u in editor.of("tool_call")}
    kinds_by_title = {u.title.split()[0]: u.kind for u in starts.values()}
    assert kinds_by_title["mcp__demo__lookup_release"] == "fetch"
    assert kinds_by_title["edit_file"] == "edit"
    diffs = [
        c
        for u in editor.of("tool_call_update")
        for c in (u.content or [])
        if getattr(c, "type", "") == "diff"
    ]
    assert diffs and diffs[0].path == calc and "return a + b" in diffs[0].new_text
    assert "return a - b" in (diffs[0].old_text or "")
    # the MCP call was approved by the user and its answer reached the model
    assert len(editor.permissions) == 2
    assert editor.permissions[0].tool_call_id in starts
    tool_texts = [m["content"] for m in fake.requests[1]["messages"] if m["role"] == "tool"]
    assert any("zlib latest release: 1.3.1" in str(t) for t in tool_texts)
    # the mentioned buffer (unsaved) and the linked file were the model's context
    first = str(fake.requests[0]["messages"])
    assert "unsaved note from the editor" in first and "def test_add" in first
    # the delivery asked with the diff and wrote through the client's fs, not to disk
    assert editor.permissions[1].kind == "edit"
    assert editor.writes == [(calc, UNSAVED.replace("return a - b", "return a + b"))]
    assert (proj / "calc.py").read_text() == CALC
    assert calc in editor.reads


async def test_cancel_ends_the_turn_as_cancelled_and_changes_nothing(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="Thinking hard about this for a long while.", hold=True))
    proj = _project(tmp_path)
    editor = EditorClient()
    env = agent_env(fake.base_url, tmp_path / "home")
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj)
        turn = asyncio.create_task(
            conn.prompt(session_id=sid, prompt=[text_block("refactor everything")])
        )
        await until(lambda: bool(editor.of("agent_thought_chunk")))
        await conn.cancel(session_id=sid)
        answer = await asyncio.wait_for(turn, 60)
        assert answer.stop_reason == "cancelled"
        fake.release()
    assert editor.writes == [] and editor.permissions == []
    assert (proj / "calc.py").read_text() == CALC


async def test_load_replays_a_finished_session(tmp_path: Path, fake: FakeK2Server) -> None:
    fake.add(
        Reply(reasoning="Let me read it.", tool_calls=[("read_file", {"path": "calc.py"})]),
        Reply(reasoning="Simple.", content="add returns a - b, so it subtracts."),
    )
    proj = _project(tmp_path)
    env = agent_env(fake.base_url, tmp_path / "home")
    first = EditorClient()
    async with spawn_agent_process(first, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj)
        await conn.set_session_mode(session_id=sid, mode_id="ask")
        answer = await conn.prompt(session_id=sid, prompt=[text_block("what does add do?")])
        assert answer.stop_reason == "end_turn"
    again = EditorClient()
    verbose = (*AGENT_CMD, "--log-level", "INFO")  # the subcommand's flag, not the server's
    async with spawn_agent_process(again, *verbose, env=env, cwd=proj) as (conn, _proc):
        await conn.initialize(protocol_version=1, client_capabilities=client_caps())
        listed = await conn.list_sessions(cwd=str(proj))
        assert [(i.session_id, i.title) for i in listed.sessions] == [(sid, "what does add do?")]
        loaded = await conn.load_session(cwd=str(proj), session_id=sid, mcp_servers=[])
        assert loaded.modes.current_mode_id == "ask"
        await until(lambda: bool(again.of("agent_message_chunk")))
        await until(
            lambda: "subtracts" in "".join(_text(u) for u in again.of("agent_message_chunk"))
        )
    kinds = again.kinds()
    assert kinds[0] == "user_message_chunk" and _text(again.updates[0][1]) == "what does add do?"
    assert "agent_thought_chunk" in kinds and "tool_call" in kinds
    assert [u.kind for u in again.of("tool_call")] == ["read"]
    with pytest.raises(Exception, match="no saved session"):
        async with spawn_agent_process(EditorClient(), *AGENT_CMD, env=env, cwd=proj) as (c, _p):
            await c.initialize(protocol_version=1, client_capabilities=client_caps())
            await c.load_session(cwd=str(proj), session_id="0" * 32, mcp_servers=[])


def _text(update: Any) -> str:
    return str(getattr(getattr(update, "content", None), "text", ""))


async def _fix_turns(
    tmp_path: Path, fake: FakeK2Server, editor: EditorClient, prompts: list[str]
) -> list[str]:
    """Run one fixing turn per prompt in one session; the stop reasons."""
    proj = _project(tmp_path)
    env = agent_env(fake.base_url, tmp_path / "home")
    reasons = []
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj)
        for text in prompts:
            answer = await conn.prompt(session_id=sid, prompt=[text_block(text)])
            reasons.append(str(answer.stop_reason))
        await until(lambda: len(editor.of("agent_message_chunk")) >= len(prompts))
    return reasons


async def test_rejected_changes_are_not_written(tmp_path: Path, fake: FakeK2Server) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(content="Fixed."))
    editor = EditorClient(answers=["reject_once"])
    assert await _fix_turns(tmp_path, fake, editor, ["fix add in calc.py"]) == ["end_turn"]
    assert len(editor.permissions) == 1 and editor.writes == []
    said = "".join(_text(u) for u in editor.of("agent_message_chunk"))
    assert "not applied" in said and ".patch" in said
    assert (tmp_path / "proj" / "calc.py").read_text() == CALC


async def test_a_buffer_edited_on_the_same_lines_meanwhile_is_not_overwritten(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(content="Fixed."))
    calc = str(tmp_path / "proj" / "calc.py")
    editor = EditorClient()

    def user_types(_call: Any) -> None:  # the user edits the same line while asked
        editor.buffers[calc] = CALC.replace("return a - b", "return b - a  # mine")

    editor.on_permission = user_types
    assert await _fix_turns(tmp_path, fake, editor, ["fix add in calc.py"]) == ["end_turn"]
    assert editor.writes == []
    assert "you edited the same lines" in "".join(
        _text(u) for u in editor.of("agent_message_chunk")
    )


async def test_always_allow_asks_once_per_session_and_turns_share_history(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    mul = ("edit_file", {"path": "calc.py", "old_text": "a * b", "new_text": "b * a"})
    fake.add(
        Reply(reasoning="fix", tool_calls=[FIX_ADD]),
        Reply(content="Fixed add."),
        Reply(reasoning="look", tool_calls=[("read_file", {"path": "calc.py"})]),
        Reply(reasoning="swap", tool_calls=[mul]),
        Reply(content="Swapped mul."),
    )
    editor = EditorClient(answers=["allow_always"])
    prompts = ["fix add in calc.py", "now swap the operands of mul"]
    assert await _fix_turns(tmp_path, fake, editor, prompts) == ["end_turn", "end_turn"]
    assert len(editor.permissions) == 1 and len(editor.writes) == 2
    assert "return a + b" in editor.writes[1][1] and "b * a" in editor.writes[1][1]
    # the second run started from the buffer the first one wrote (not the stale disk file)
    read = [m for m in fake.requests[3]["messages"] if m["role"] == "tool"][-1]
    assert "return a + b" in str(read["content"])
    second = str(fake.requests[2]["messages"])
    assert "Earlier in this conversation" in second and "fix add in calc.py" in second


async def test_without_a_key_the_agent_starts_and_says_what_to_do(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    proj = _project(tmp_path)
    env = agent_env(fake.base_url, tmp_path / "home")
    for name in ("K2LSP_API_KEY", "K2LSP_BASE_URL", "MOONSHOT_API_KEY"):
        env.pop(name, None)
    env["K2LSP_PROVIDER"] = "moonshot"
    editor = EditorClient()
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj)
        answer = await conn.prompt(session_id=sid, prompt=[text_block("hello")])
        assert answer.stop_reason == "end_turn"
        await until(lambda: bool(editor.of("agent_message_chunk")))
    said = _text(editor.of("agent_message_chunk")[0])
    assert "no API key" in said and "MOONSHOT_API_KEY" in said
    assert fake.requests == []


async def test_cancel_while_asked_to_apply_ends_cancelled_and_writes_nothing(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(content="Fixed."))
    proj = _project(tmp_path)
    editor = EditorClient(answers=["cancelled"])
    env = agent_env(fake.base_url, tmp_path / "home")
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj)
        editor.on_permission = lambda _call: asyncio.ensure_future(conn.cancel(session_id=sid))
        answer = await conn.prompt(session_id=sid, prompt=[text_block("fix add in calc.py")])
    assert answer.stop_reason == "cancelled"
    assert len(editor.permissions) == 1 and editor.writes == []
    assert (proj / "calc.py").read_text() == CALC


async def test_without_client_fs_the_changes_are_applied_on_disk_and_undoable(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="fix", tool_calls=[FIX_ADD]), Reply(content="Fixed."))
    proj = _project(tmp_path)
    editor = EditorClient()
    env = agent_env(fake.base_url, tmp_path / "home")
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        await conn.initialize(protocol_version=1, client_capabilities=schema.ClientCapabilities())
        sid = (await conn.new_session(cwd=str(proj), mcp_servers=[])).session_id
        answer = await conn.prompt(session_id=sid, prompt=[text_block("fix add in calc.py")])
        assert answer.stop_reason == "end_turn"
    assert editor.writes == [] and editor.reads == [] and len(editor.permissions) == 1
    assert "return a + b" in (proj / "calc.py").read_text()
    undo = subprocess.run(
        [sys.executable, "-m", "k2lsp", "undo"], cwd=proj, env=env, capture_output=True, text=True
    )
    assert undo.returncode == 0, undo.stderr
    assert (proj / "calc.py").read_text() == CALC


async def test_sigterm_mid_turn_removes_the_run_copy_and_stops_mcp_servers(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="Thinking for a long while.", hold=True))
    proj = _project(tmp_path)
    pidfile = tmp_path / "mcp.pid"
    env_vars = [schema.EnvVariable(name="DEMO_PIDFILE", value=str(pidfile))]
    mcp = [
        schema.McpServerStdio(name="demo", command=sys.executable, args=[MCP_SERVER], env=env_vars)
    ]
    editor = EditorClient()
    env = agent_env(fake.base_url, tmp_path / "home")
    runs = tmp_path / "home" / "state" / "k2lsp" / "runs"
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, proc):
        sid = await _session(conn, proj, mcp)
        turn = asyncio.ensure_future(conn.prompt(session_id=sid, prompt=[text_block("go")]))
        await until(lambda: bool(editor.of("agent_thought_chunk")))
        assert any(runs.iterdir())  # the run copy exists while the turn runs
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        turn.cancel()
    fake.release()
    assert not any(runs.iterdir())
    pid = int(pidfile.read_text())
    await until(lambda: not _alive(pid), timeout=30)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_an_untrusted_repository_cannot_start_mcp_servers_and_the_panel_is_told(
    tmp_path: Path, fake: FakeK2Server
) -> None:
    fake.add(Reply(reasoning="Just answer.", content="Hello."))
    proj = make_repo(
        tmp_path / "proj",
        {
            "calc.py": CALC,
            "k2lsp.toml": f'[mcp.servers.evil]\ncommand = "{sys.executable}"\n'
            f'args = ["{MCP_SERVER}"]\n',
        },
    )
    editor = EditorClient()
    env = agent_env(fake.base_url, tmp_path / "home")
    env.pop("K2LSP_TRUST_REPO", None)
    async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _proc):
        sid = await _session(conn, proj)
        await conn.set_session_mode(session_id=sid, mode_id="ask")
        await conn.prompt(session_id=sid, prompt=[text_block("hi")])
        await until(lambda: "Hello." in "".join(_text(u) for u in editor.of("agent_message_chunk")))
    said = "".join(_text(u) for u in editor.of("agent_message_chunk"))
    assert "not trusted" in said and "mcp" in said and "k2lsp trust" in said
    offered = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert not any(name.startswith("mcp__") for name in offered)
