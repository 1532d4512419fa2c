"""The K2 client over the real openai SDK against the real fake K2 server (k2-protocol.md)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from k2lsp.config import Settings
from k2lsp.errors import (
    AuthError,
    ContextOverflow,
    MalformedReply,
    ModelNotFound,
    ProviderError,
    QuotaExhausted,
)
from k2lsp.model.client import K2Client
from k2lsp.model.fake_server import FakeK2Server, Fault, Reply
from k2lsp.model.types import AssistantTurn

TEST_KEY = "sk-test-k2lsp-0123456789abcdefghij"  # the key conftest.k2_env uses

USER = [{"role": "system", "content": "You code."}, {"role": "user", "content": "Fix a.py"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]
# Reasoning with bytes that a careless client would alter: unicode, tabs, trailing spaces, CRLF.
ODD_REASONING = "Let me think…\tfirst, «a.py».  \r\nThen 中文 and emoji 🙂 \n\n  "


def make_settings(base_url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = dict(
        provider="openai-compatible",
        base_url=base_url,
        api_key=TEST_KEY,
        model="kimi-k2-thinking",
        retry_base_delay_s=0.01,
        retry_max_delay_s=0.05,
    )
    values.update(kw)
    return Settings(**values)


@pytest.fixture
async def client(fake_k2: FakeK2Server) -> AsyncIterator[K2Client]:
    c = K2Client(make_settings(fake_k2.base_url))
    yield c
    await c.aclose()


def tool_result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


async def run_loop(client: K2Client, history: list[dict[str, Any]]) -> AssistantTurn:
    """Two steps of a tool loop: reply with calls, answer each call, ask again."""
    turn = await client.complete(history, TOOLS)
    history.append(client.history_message(turn))
    history.extend(tool_result(c.id, f"result of {c.name}") for c in turn.tool_calls)
    return await client.complete(history, TOOLS)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning", "openrouter"])
async def test_second_request_echoes_reasoning_byte_for_byte(
    fake_k2: FakeK2Server, client: K2Client, field: str
) -> None:
    fake_k2.add(
        Reply(
            reasoning=ODD_REASONING,
            tool_calls=[("read_file", '{"path":  "a.py"}')],
            reasoning_field=field,
        ),
        Reply(reasoning="done", content="Fixed."),
    )
    history = copy.deepcopy(USER)
    final = await run_loop(client, history)
    assert final.content == "Fixed."
    sent = fake_k2.requests[1]["messages"][2]
    assert sent.get("reasoning_content", sent.get("reasoning")) == ODD_REASONING
    call = sent["tool_calls"][0]
    assert call["id"] == "functions.read_file:0"
    assert call["function"]["arguments"] == '{"path":  "a.py"}'
    assert "content" not in sent
    if field == "openrouter":
        assert sent["reasoning_details"][0]["text"] == ODD_REASONING


async def test_caller_history_is_never_mutated(fake_k2: FakeK2Server, client: K2Client) -> None:
    fake_k2.add(Reply(content="ok"))
    history = [
        *USER,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "x:1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": ""},
                }
            ],
        },
        tool_result("x:1", ""),
    ]
    before = copy.deepcopy(history)
    await client.complete(history, TOOLS)
    assert history == before
    sent = fake_k2.requests[0]["messages"]
    assert "content" not in sent[2] and sent[2]["reasoning_content"].strip()
    assert sent[3]["content"].strip()


@pytest.mark.parametrize("blank", [False, True])
async def test_interleaved_parallel_calls_without_ids_are_reassembled(
    fake_k2: FakeK2Server, client: K2Client, blank: bool
) -> None:
    args_a = {"path": "src/alpha.py", "start": 1, "end": 200}
    args_b = {"path": "tests/test_beta.py", "pattern": "def test_"}
    fake_k2.add(
        Reply(
            reasoning="two at once",
            tool_calls=[("read_file", args_a), ("grep", args_b)],
            omit_ids=True,
            blank_followups=blank,
            chunk_size=3,
        )
    )
    history = [
        *USER,
        {
            "role": "assistant",
            "reasoning_content": "r",
            "tool_calls": [
                {
                    "id": "functions.ls:0",
                    "type": "function",
                    "function": {"name": "ls", "arguments": "{}"},
                }
            ],
        },
        tool_result("functions.ls:0", "a.py"),
    ]
    turn = await client.complete(history, TOOLS)
    assert [(c.name, json.loads(c.arguments)) for c in turn.tool_calls] == [
        ("read_file", args_a),
        ("grep", args_b),
    ]
    assert [c.id for c in turn.tool_calls] == ["functions.read_file:1", "functions.grep:2"]


@pytest.mark.parametrize(
    ("place", "cached_in"),
    [("choice", "top"), ("chunk", "details"), ("final", "top"), ("final", "details")],
)
async def test_usage_is_read_wherever_the_host_puts_it(
    fake_k2: FakeK2Server, client: K2Client, place: str, cached_in: str
) -> None:
    fake_k2.add(
        Reply(
            content="hi",
            usage=place,
            cached_in=cached_in,
            prompt_tokens=1_000_000,
            cached_tokens=400_000,
            completion_tokens=100_000,
        )
    )
    turn = await client.complete(USER)
    assert (turn.usage.prompt_tokens, turn.usage.cached_tokens, turn.usage.completion_tokens) == (
        1_000_000,
        400_000,
        100_000,
    )
    # kimi-k2-thinking list prices (open-weight host preset = free), so set them explicitly
    assert client.total_usage.prompt_tokens == 1_000_000


async def test_cost_prices_cached_tokens_at_the_cache_hit_rate(fake_k2: FakeK2Server) -> None:
    prices = {"input_cache_hit": 0.15, "input": 0.60, "output": 2.50}
    c = K2Client(make_settings(fake_k2.base_url, prices=prices))
    fake_k2.add(
        Reply(
            content="x", prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=100_000
        )
    )
    turn = await c.complete(USER)
    await c.aclose()
    assert turn.usage.cost_usd == pytest.approx(0.6 * 0.60 + 0.4 * 0.15 + 0.1 * 2.50)


@pytest.mark.parametrize("abrupt", [False, True])
async def test_stream_cut_mid_tool_call_is_discarded_and_retried(
    fake_k2: FakeK2Server, client: K2Client, abrupt: bool
) -> None:
    cut_reply = Reply(reasoning="go", tool_calls=[("delete_everything", {"path": "/"})])
    fake_k2.add(Fault.cut(3, cut_reply, abrupt=abrupt), Reply(reasoning="again", content="Safe."))
    retries: list[tuple[int, float, str]] = []
    turn = await client.complete(USER, TOOLS, on_retry=lambda *a: retries.append(a))
    assert turn.tool_calls == [] and turn.content == "Safe." and turn.reasoning == "again"
    assert len(retries) == 1 and retries[0][0] == 1
    assert len(fake_k2.requests) == 2


async def test_live_deltas_stream_reasoning_then_content(
    fake_k2: FakeK2Server, client: K2Client
) -> None:
    fake_k2.add(Reply(reasoning="think think", content="answer text", chunk_size=2))
    seen: list[tuple[str, str]] = []
    await client.complete(USER, on_delta=lambda k, t: seen.append((k, t)))
    assert "".join(t for k, t in seen if k == "reasoning") == "think think"
    assert "".join(t for k, t in seen if k == "content") == "answer text"
    assert seen[0][0] == "reasoning" and seen[-1][0] == "content" and len(seen) > 4


async def test_empty_reasoning_delta_counts_as_present(
    fake_k2: FakeK2Server, client: K2Client
) -> None:
    fake_k2.add(Reply(reasoning="", content="ok"))
    turn = await client.complete(USER)
    assert turn.reasoning == "" and turn.reasoning_field == "reasoning_content"


@pytest.mark.parametrize("where", ["content", "reasoning"])
async def test_leaked_tool_tokens_become_calls_and_are_never_shown(
    fake_k2: FakeK2Server, client: K2Client, where: str
) -> None:
    fake_k2.add(
        Reply(
            reasoning="I should read it.",
            content="Reading.",
            tool_calls=[("read_file", {"path": "a.py"}), ("grep", {"q": "x"})],
            leak=where,
            chunk_size=5,
        )
    )
    seen: list[str] = []
    turn = await client.complete(USER, TOOLS, on_delta=lambda k, t: seen.append(t))
    assert [(c.id, c.name) for c in turn.tool_calls] == [
        ("functions.read_file:0", "read_file"),
        ("functions.grep:1", "grep"),
    ]
    assert json.loads(turn.tool_calls[0].arguments) == {"path": "a.py"}
    shown = "".join(seen) + (turn.content or "") + (turn.reasoning or "")
    assert "<|" not in shown
    assert turn.content == "Reading." and turn.reasoning == "I should read it."


@pytest.mark.parametrize(
    "bad",
    [
        Reply(reasoning="only thinking, no answer"),
        Reply(content="I will call a tool", finish_reason="tool_calls"),
        Reply(content="x <|tool_calls_section_begin|> garbage"),
    ],
    ids=["reasoning-only", "tool_calls-without-call", "unparsable-leak"],
)
async def test_malformed_reply_is_retried_then_accepted(
    fake_k2: FakeK2Server, client: K2Client, bad: Reply
) -> None:
    fake_k2.add(bad, Reply(content="fine"))
    reasons: list[str] = []
    turn = await client.complete(USER, TOOLS, on_retry=lambda a, d, r: reasons.append(r))
    assert turn.content == "fine" and len(reasons) == 1


async def test_malformed_reply_gives_up_after_bounded_retries(fake_k2: FakeK2Server) -> None:
    c = K2Client(make_settings(fake_k2.base_url, max_retries=2))
    fake_k2.add(*[Reply(reasoning="hmm") for _ in range(3)], Reply(content="never reached"))
    with pytest.raises(MalformedReply, match="reasoning only"):
        await c.complete(USER)
    await c.aclose()
    assert len(fake_k2.requests) == 3


async def test_malformed_arguments_are_marked_and_echoed_as_an_empty_object(
    fake_k2: FakeK2Server, client: K2Client
) -> None:
    fake_k2.add(Reply(reasoning="r", tool_calls=[("read_file", '{"path": "a.py"')]))
    turn = await client.complete(USER, TOOLS)
    call = turn.tool_calls[0]
    assert call.received == '{"path": "a.py"' and call.problem and "not valid JSON" in call.problem
    sent = client.history_message(turn)["tool_calls"][0]["function"]["arguments"]
    assert sent == "{}"


RETRYABLE = [
    Fault.http(429, "engine_overloaded_error", "The engine is currently overloaded"),
    Fault.http(500, "server_error", "internal"),
    Fault.http(503, "service_unavailable", "down"),
    Fault.http(429, "engine_overloaded_error", "busy", openrouter=True),
    Fault.reset(),
    Fault.stream_error("upstream overloaded", "server_error"),
]


@pytest.mark.parametrize("fault", RETRYABLE, ids=lambda f: f"{f.kind}-{f.status}-{f.openrouter}")
async def test_transient_failures_are_retried(
    fake_k2: FakeK2Server, client: K2Client, fault: Fault
) -> None:
    fake_k2.add(fault, Reply(content="recovered"))
    retries: list[tuple[int, float, str]] = []
    turn = await client.complete(USER, on_retry=lambda *a: retries.append(a))
    assert turn.content == "recovered" and len(retries) == 1
    assert retries[0][1] <= 0.05  # backoff from the configured base, not seconds


RPM_MSG = "Your account org-1 request reached max RPM: 3, please try again after 1 seconds"


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http(429, "rate_limit_reached_error", RPM_MSG),
        Fault.http(429, "rate_limit_reached_error", RPM_MSG, openrouter=True),
        Fault.http(429, "rate_limit_reached_error", "slow down", headers={"Retry-After": "1"}),
    ],
    ids=["moonshot", "openrouter", "retry-after-header"],
)
async def test_rate_limit_waits_the_seconds_the_host_names(
    fake_k2: FakeK2Server, client: K2Client, fault: Fault
) -> None:
    fake_k2.add(fault, Reply(content="ok"))
    delays: list[float] = []
    await client.complete(USER, on_retry=lambda a, d, r: delays.append(d))
    assert delays == [1.0]


FATAL = [
    (
        Fault.http(401, "invalid_authentication_error", f"Incorrect API key provided: {TEST_KEY}"),
        AuthError,
        "Incorrect API key provided",
    ),
    (
        Fault.http(401, "invalid_authentication_error", "Invalid Authentication"),
        AuthError,
        "K2LSP_API_KEY",
    ),
    (Fault.http(403, "permission_denied_error", "denied"), AuthError, "K2LSP_API_KEY"),
    (
        Fault.http(429, "exceeded_current_quota_error", "balance is insufficient"),
        QuotaExhausted,
        "balance",
    ),
    (
        Fault.http(429, "exceeded_current_quota_error", "no money", openrouter=True),
        QuotaExhausted,
        "no money",
    ),
    (
        Fault.http(400, "invalid_request_error", "Invalid request: Input token length too long"),
        ContextOverflow,
        "context",
    ),
    (
        Fault.http(400, "invalid_request_error", "Your request exceeded model token limit: 262144"),
        ContextOverflow,
        "context",
    ),
    (
        Fault.http(400, "invalid_request_error", "Invalid request: bad field"),
        ProviderError,
        "not retried",
    ),
    (Fault.http(400, "content_filter", "high risk"), ProviderError, "content_filter"),
]


@pytest.mark.parametrize(("fault", "exc", "needle"), FATAL, ids=lambda x: getattr(x, "type", None))
async def test_fatal_errors_raise_typed_errors_without_retry(
    fake_k2: FakeK2Server, client: K2Client, fault: Fault, exc: type[Exception], needle: str
) -> None:
    fake_k2.add(fault, Reply(content="never"))
    with pytest.raises(exc, match=needle) as info:
        await client.complete(USER)
    assert type(info.value) is exc
    assert len(fake_k2.requests) == 1
    assert TEST_KEY not in str(info.value)


async def test_unknown_model_lists_what_the_host_offers() -> None:
    with FakeK2Server([Reply(content="x")], models=["kimi-k2.5", "kimi-k2-thinking-turbo"]) as srv:
        c = K2Client(make_settings(srv.base_url, model="kimi-k2-thinking"))
        with pytest.raises(ModelNotFound) as info:
            await c.complete(USER)
        await c.aclose()
    assert info.value.available == ["kimi-k2.5", "kimi-k2-thinking-turbo"]
    assert "kimi-k2.5" in str(info.value) and "K2LSP_MODEL" in str(info.value)


async def test_retries_exhausted_raise_provider_error(fake_k2: FakeK2Server) -> None:
    c = K2Client(make_settings(fake_k2.base_url, max_retries=1))
    fake_k2.add(Fault.http(503, "x", "down"), Fault.cut(1))
    with pytest.raises(ProviderError, match="2 attempts") as info:
        await c.complete(USER)
    await c.aclose()
    assert type(info.value) is ProviderError and TEST_KEY not in str(info.value)


async def test_requests_follow_the_k2_rules(fake_k2: FakeK2Server, client: K2Client) -> None:
    fake_k2.add(Reply(content="ok"))
    await client.complete(USER, TOOLS)
    body = fake_k2.requests[0]
    assert body["stream"] is True and body["temperature"] == 1.0
    assert body["max_tokens"] >= 16_000 and fake_k2.missing_max_tokens == []
    assert body["tool_choice"] == "auto" and "reasoning_effort" not in body
    assert "thinking" not in body  # kimi-k2-thinking always thinks: no switch is sent
    assert fake_k2.auth == [True]
    assert TEST_KEY not in json.dumps(fake_k2.requests)


@pytest.mark.parametrize(
    ("thinking", "state"), [(None, "enabled"), (True, "enabled"), (False, "disabled")]
)
async def test_k2_5_thinking_switch_is_an_object(
    fake_k2: FakeK2Server, thinking: bool | None, state: str
) -> None:
    c = K2Client(make_settings(fake_k2.base_url, model="kimi-k2.5", thinking=thinking))
    fake_k2.add(Reply(content="ok"))
    await c.complete(USER)
    await c.aclose()
    assert fake_k2.requests[0]["thinking"] == {"type": state}
    assert "reasoning_effort" not in fake_k2.requests[0]


async def test_max_tokens_clamped_to_the_context_from_get_models() -> None:
    models = [{"id": "kimi-k2-thinking", "context_length": 20_000}]
    with FakeK2Server([Reply(content="ok")], models=models, context_limit=20_000) as srv:
        c = K2Client(make_settings(srv.base_url))
        await c.complete(USER)
        await c.aclose()
        assert c.context_length == 20_000
        assert 1024 <= srv.requests[0]["max_tokens"] < 20_000
        assert srv.rejected == []


async def test_prompt_larger_than_context_raises_context_overflow(fake_k2: FakeK2Server) -> None:
    c = K2Client(make_settings(fake_k2.base_url, context_length=4_000))
    big = [{"role": "user", "content": "x" * 40_000}]
    with pytest.raises(ContextOverflow):
        await c.complete(big)
    await c.aclose()
    assert fake_k2.requests == []


async def test_too_little_room_for_16k_is_an_overflow_not_a_short_max_tokens(
    fake_k2: FakeK2Server,
) -> None:
    c = K2Client(make_settings(fake_k2.base_url, context_length=64_000))
    # ~45k tokens at 3 chars/token: 18k would be left, 16k is the minimum once the margin is in
    big = [*USER, {"role": "user", "content": "x" * 150_000}]
    with pytest.raises(ContextOverflow):
        await c.complete(big)
    await c.aclose()
    assert fake_k2.requests == []


async def test_the_prompt_estimate_is_calibrated_from_real_prompt_tokens() -> None:
    with FakeK2Server([], models=["kimi-k2-thinking"], context_limit=64_000) as srv:
        c = K2Client(make_settings(srv.base_url, context_length=64_000))
        # the same history is too big at the blind 3 chars/token guess ...
        big = [*USER, {"role": "user", "content": "x" * 150_000}]
        with pytest.raises(ContextOverflow):
            await c.complete(big)
        # ... and fits once the host's count (4 chars/token on the fake) calibrated the estimate
        srv.add(Reply(content="ok"), Reply(content="ok"))
        await c.complete([*USER, {"role": "user", "content": "y" * 20_000}])
        await c.complete(big)
        await c.aclose()
        assert len(srv.requests) == 2 and srv.rejected == []
        assert srv.requests[1]["max_tokens"] >= 16_000


async def test_pydantic_tool_schemas_are_accepted_after_normalisation(
    fake_k2: FakeK2Server, client: K2Client
) -> None:
    import enum

    from pydantic import BaseModel, Field

    class Mode(enum.Enum):
        A = "a"
        B = "b"

    class Range(BaseModel):
        start: int
        end: int | None = None

    class Params(BaseModel):
        path: str = Field(description="file")
        mode: Mode = Mode.A
        ranges: list[Range] = []
        limit: int | None = None

    schema = {
        "type": "function",
        "function": {
            "name": "edit_file",
            "description": "d",
            "parameters": Params.model_json_schema(),
        },
    }
    fake_k2.add(Reply(content="ok"))
    await client.complete(USER, [schema])
    assert fake_k2.rejected == []
    sent = fake_k2.requests[0]["tools"][0]["function"]["parameters"]
    assert "$defs" not in json.dumps(sent) and "title" not in sent
    assert sent["properties"]["mode"]["type"] == "string"
    assert sent["properties"]["limit"]["type"] == "integer"


async def test_cancelling_a_call_drops_the_connection(
    fake_k2: FakeK2Server, client: K2Client
) -> None:
    fake_k2.add(Reply(reasoning="long thought", content="never", hold=True))
    task = asyncio.create_task(client.complete(USER))
    assert await asyncio.to_thread(fake_k2.wait_held, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if fake_k2.disconnects:
            break
        await asyncio.sleep(0.1)
    assert fake_k2.disconnects == 1


async def test_list_models_reads_context_and_reasoning_support() -> None:
    models = [
        {"id": "kimi-k2-thinking", "context_length": 262_144, "supports_reasoning": True},
        {"id": "kimi-k2-instruct", "context_length": 131_072, "supports_reasoning": False},
    ]
    with FakeK2Server([], models=models) as srv:
        c = K2Client(make_settings(srv.base_url))
        infos = await c.list_models()
        await c.aclose()
    assert [(m.id, m.context_length, m.supports_reasoning) for m in infos] == [
        ("kimi-k2-thinking", 262_144, True),
        ("kimi-k2-instruct", 131_072, False),
    ]


async def test_a_custom_name_the_host_says_reasons_is_treated_as_thinking() -> None:
    # vLLM `--served-model-name k2`: the name looks like a non-thinking K2, GET /models knows
    models = [{"id": "k2", "context_length": 262_144, "supports_reasoning": True}]
    call = {"id": "functions.read_file:0", "type": "function"}
    call["function"] = {"name": "read_file", "arguments": '{"path": "a.py"}'}
    history = [*USER, {"role": "assistant", "tool_calls": [call]}, tool_result(call["id"], "x")]
    with FakeK2Server([Reply(content="ok")], models=models) as srv:
        c = K2Client(make_settings(srv.base_url, provider="vllm", model="k2"))
        await c.complete(history, TOOLS)
        await c.aclose()
        body = srv.requests[0]
    assert c.thinking and body["temperature"] == 1.0
    assert body["messages"][2]["reasoning_content"]  # the placeholder reasoning


async def test_a_custom_name_without_reasoning_support_stays_non_thinking() -> None:
    models = [{"id": "k2", "context_length": 131_072, "supports_reasoning": False}]
    with FakeK2Server([Reply(content="ok")], models=models) as srv:
        c = K2Client(make_settings(srv.base_url, provider="vllm", model="k2"))
        await c.complete(USER)
        await c.aclose()
        body = srv.requests[0]
    assert not c.thinking and body["temperature"] == 0.6
