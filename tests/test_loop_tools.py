"""The loop with tools of its own (a tool that raises, a slow editing tool), driven by the real
K2 client against the fake K2 server."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY
from pydantic import BaseModel

from k2lsp.agent.budgets import Budget
from k2lsp.agent.compaction import Ledger
from k2lsp.agent.events import Emitter, Event
from k2lsp.agent.loop import EMPTY_RESULT, AgentLoop
from k2lsp.agent.prompts import initial_messages
from k2lsp.config.settings import Settings
from k2lsp.errors import Cancelled
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server
from k2lsp.model.client import K2Client
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import ToolContext, ToolRegistry, tool

MODEL = "kimi-k2-thinking"


class NoArgs(BaseModel):
    """No arguments."""


class WriteArgs(BaseModel):
    """Where to write."""

    path: str


def make_registry(started: threading.Event) -> ToolRegistry:
    """A registry with a raising tool, an empty-output tool and a slow editing tool."""
    reg = ToolRegistry()

    @tool("explode", NoArgs, writes="none", registry=reg)
    def explode(ctx: ToolContext, args: NoArgs) -> str:
        """Always fails."""
        raise RuntimeError("kaboom")

    @tool("quiet", NoArgs, writes="none", registry=reg)
    def quiet(ctx: ToolContext, args: NoArgs) -> str:
        """Returns nothing."""
        return ""

    @tool("slow_write", WriteArgs, writes="any", edits=True, registry=reg)
    def slow_write(ctx: ToolContext, args: WriteArgs) -> str:
        """Writes a file slowly, in two halves."""
        target = ctx.workspace.resolve(args.path)
        with target.open("w") as fh:
            fh.write("first half\n")
            fh.flush()
            started.set()
            time.sleep(1.0)
            fh.write("second half\n")
        return f"wrote {args.path}"

    return reg


def make_loop(srv: FakeK2Server, root: Path, events: list[Event], reg: ToolRegistry) -> AgentLoop:
    """An AgentLoop on `root` talking to `srv`."""
    settings = Settings(
        provider="openai-compatible", base_url=srv.base_url, model=MODEL, api_key=TEST_KEY
    )
    emitter = Emitter("t", [events.append])
    ctx = ToolContext(workspace=Workspace(root), emitter=emitter, settings=settings)
    return AgentLoop(
        K2Client(settings),
        reg,
        ctx,
        emitter,
        budget=Budget(max_steps=10),
        ledger=Ledger(goal="test"),
    )


async def test_a_tool_that_raises_becomes_error_text_and_the_loop_goes_on(tmp_path: Path) -> None:
    events: list[Event] = []
    script = [
        Reply(reasoning="try", tool_calls=[("explode", {}), ("quiet", {})]),
        Reply(reasoning="ok", content="Handled."),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        loop = make_loop(srv, tmp_path, events, make_registry(threading.Event()))
        result = await loop.run(initial_messages("go"))
        tool_msgs = [m for m in srv.requests[1]["messages"] if m["role"] == "tool"]
    assert result.summary == "Handled."
    assert "kaboom" in tool_msgs[0]["content"] and "failed internally" in tool_msgs[0]["content"]
    assert tool_msgs[1]["content"] == EMPTY_RESULT
    oks = [e.data["ok"] for e in events if e.type == "tool_result"]
    assert oks == [False, True]


async def test_cancel_lets_a_running_edit_finish(tmp_path: Path) -> None:
    started = threading.Event()
    events: list[Event] = []
    script = [
        Reply(reasoning="write", tool_calls=[("slow_write", {"path": "out.txt"})]),
        Reply(reasoning="never reached", content="x"),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        loop = make_loop(srv, tmp_path, events, make_registry(started))
        task = asyncio.create_task(loop.run(initial_messages("go")))
        assert await asyncio.to_thread(started.wait, 30)
        task.cancel()
        with pytest.raises(Cancelled):
            await task
        assert len(srv.requests) == 1
    assert (tmp_path / "out.txt").read_text() == "first half\nsecond half\n"


async def test_tool_output_is_capped_and_redacted(tmp_path: Path) -> None:
    reg = ToolRegistry()

    @tool("big", NoArgs, writes="none", registry=reg)
    def big(ctx: ToolContext, args: NoArgs) -> str:
        """Returns a lot, including the key."""
        return TEST_KEY + "\n" + "y" * 200_000

    events: list[Event] = []
    script = [Reply(reasoning="r", tool_calls=[("big", {})]), Reply(reasoning="r", content="ok")]
    with FakeK2Server(script, models=[MODEL]) as srv:
        await make_loop(srv, tmp_path, events, reg).run(initial_messages("go"))
        sent: Any = srv.requests[1]["messages"][-1]["content"]
    assert TEST_KEY not in sent and "[REDACTED]" in sent
    assert len(sent) < 60_000 and "characters omitted" in sent
