"""Loop bookkeeping is proportional to what changed: over a run every history message is
copied for the wire, sized and written to the trajectory once, however many requests echo it,
and what reaches the host is still exactly the deep-copy build of the whole history.

Counted through instrumented hooks (`WireHistory.built`, a counting `message_chars`, the
trajectory's request records), never timed. The real K2 client (openai SDK) talks to the fake
K2 server over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY
from pydantic import BaseModel

from k2lsp.agent import loop as loop_module
from k2lsp.agent.budgets import Budget
from k2lsp.agent.compaction import Ledger
from k2lsp.agent.events import Emitter
from k2lsp.agent.loop import AgentLoop
from k2lsp.agent.prompts import initial_messages
from k2lsp.agent.trajectory import Trajectory, replay_requests
from k2lsp.config.settings import Settings
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server
from k2lsp.model.client import K2Client
from k2lsp.model.request import WireHistory, build_messages
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import ToolContext, ToolRegistry, tool

MODEL = "kimi-k2-thinking"
STEPS = 12


class PartArgs(BaseModel):
    """Which part to read."""

    part: int


def _registry() -> ToolRegistry:
    reg = ToolRegistry()

    @tool("read_part", PartArgs, writes="none", registry=reg)
    def read_part(ctx: ToolContext, args: PartArgs) -> str:
        """Return one part of a long text."""
        return f"part {args.part}: " + "é line of text\n" * 200

    return reg


def _script() -> list[Reply]:
    replies = [
        Reply(reasoning=f"Reading part {i}.", tool_calls=[("read_part", {"part": i})])
        for i in range(STEPS - 1)
    ]
    return [*replies, Reply(reasoning="Done.", content="All parts read.")]


async def _run(tmp_path: Path, srv: FakeK2Server) -> tuple[AgentLoop, K2Client, Path]:
    settings = Settings(
        provider="openai-compatible", base_url=srv.base_url, model=MODEL, api_key=TEST_KEY
    )
    trajectory = Trajectory(tmp_path / "t.jsonl")
    emitter = Emitter("incremental", [trajectory.event])
    ctx = ToolContext(workspace=Workspace(tmp_path), emitter=emitter, settings=settings)
    client = K2Client(settings)
    loop = AgentLoop(
        client,
        _registry(),
        ctx,
        emitter,
        budget=Budget(max_steps=STEPS + 2),
        ledger=Ledger(goal="read"),
        trajectory=trajectory,
    )
    try:
        await loop.run(initial_messages("read every part"))
    finally:
        await client.aclose()
        trajectory.close()
    return loop, client, trajectory.path


async def test_each_message_is_built_sized_and_recorded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sized: list[int] = []
    real_chars = loop_module.message_chars

    def counting_chars(msg: dict[str, Any]) -> int:
        sized.append(id(msg))
        return real_chars(msg)

    monkeypatch.setattr(loop_module, "message_chars", counting_chars)
    with FakeK2Server(_script(), models=[MODEL]) as srv:
        loop, client, path = await _run(tmp_path, srv)
        received = [r["messages"] for r in srv.requests]

    assert loop.compactions == 0 and len(received) == STEPS
    sent = sum(len(m) for m in received)  # messages echoed over the run: quadratic in steps
    history = len(loop.messages)  # the final history: every message the run ever sent
    assert history == len(received[-1]) + 1 and sent > 4 * history
    # the wire copy and size of each message were made once (the last reply is never sent)
    assert client.wire.built == history - 1
    # the loop sized each message once (its estimates run before and after every request)
    assert len(sized) == len(set(sized)) <= history
    # the trajectory wrote each message once, and replays to exactly what was sent ...
    records = [json.loads(line) for line in path.read_text().splitlines()]
    written = sum(len(r["messages"]) for r in records if r["type"] == "request")
    assert written == history - 1
    requests = replay_requests(path)
    assert len(requests) == STEPS
    # ... and the host got byte for byte what the full deep-copy build of each history gives
    for history_then, got in zip(requests, received, strict=True):
        want = build_messages(history_then, send_field=None, thinking=client.thinking)
        assert json.dumps(got, ensure_ascii=False) == json.dumps(want, ensure_ascii=False)


def test_wire_history_builds_only_new_or_replaced_messages() -> None:
    wire = WireHistory()
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "function": {}}]},
        {"role": "tool", "tool_call_id": "a", "content": None},
    ]
    out, chars = wire.build(msgs, send_field=None, thinking=True)
    assert wire.built == 4
    assert out == build_messages(msgs, send_field=None, thinking=True)
    assert chars == len(json.dumps(out, ensure_ascii=False))
    assert msgs[1] == {"role": "user", "content": ""}  # the history itself is untouched

    msgs.append({"role": "user", "content": "next"})
    out, chars = wire.build(msgs, send_field=None, thinking=True)
    assert wire.built == 5  # only the new message
    assert chars == len(json.dumps(out, ensure_ascii=False))

    replaced = [*msgs[:3], {**msgs[3], "content": "fixed"}, msgs[4]]  # a repaired history
    out, _ = wire.build(replaced, send_field=None, thinking=True)
    assert wire.built == 6 and out[3]["content"] == "fixed"

    out, _ = wire.build(replaced, send_field="reasoning", thinking=True)  # other options
    assert wire.built == 11
    assert out == build_messages(replaced, send_field="reasoning", thinking=True)


def test_wire_history_is_bounded() -> None:
    wire = WireHistory(max_entries=3)
    msgs = [{"role": "user", "content": str(i)} for i in range(10)]
    out, _ = wire.build(msgs, send_field=None, thinking=False)
    assert [m["content"] for m in out] == [str(i) for i in range(10)]
    assert len(wire._items) == 3


async def test_the_encoded_body_is_what_the_sdk_would_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`encode_body` joins cached message texts; the SDK's own `create` encodes everything:
    both give the same bytes (watched at the SDK's encoder, the request really sent)."""
    import openai._base_client as sdk_base

    from k2lsp.model.failures import sdk_arguments
    from k2lsp.model.request import encode_body

    encoded: list[bytes] = []
    real_dumps = sdk_base.openapi_dumps

    def watching_dumps(obj: Any) -> bytes:
        encoded.append(real_dumps(obj))
        return encoded[-1]

    monkeypatch.setattr(sdk_base, "openapi_dumps", watching_dumps)
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "é \u2028 system"},
        {"role": "user", "content": ""},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": 'think "quoted"',
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "out \x00 ✓"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with FakeK2Server([Reply(content="ok")], models=[MODEL]) as srv:
        client = K2Client(
            Settings(
                provider="openai-compatible", base_url=srv.base_url, model=MODEL, api_key=TEST_KEY
            )
        )
        try:
            body, _ = client._build(history, tools)
            ours = encode_body(body, client.wire.texts)
            create = client._sdk().chat.completions.with_streaming_response.create
            async with create(**sdk_arguments(body)):
                pass
        finally:
            await client.aclose()
    assert encoded == [ours]
    assert ours == encode_body(body)  # cached texts or a fresh encoding: the same bytes


def test_wire_history_forgets_messages_compacted_away() -> None:
    wire = WireHistory()
    msgs = [{"role": "user", "content": str(i)} for i in range(200)]
    wire.build(msgs, send_field=None, thinking=False)
    kept = msgs[-5:]
    out, _ = wire.build(kept, send_field=None, thinking=False)
    assert [m["content"] for m in out] == [m["content"] for m in kept]
    assert len(wire._items) == 5 and wire.built == 200  # the kept ones were not rebuilt
