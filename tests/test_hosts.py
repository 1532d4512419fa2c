"""Self-hosted K2 servers as first-class hosts: the real client (openai SDK) and the agent loop
against the fake server imitating llama.cpp, vLLM, SGLang, Ollama and LM Studio over real HTTP
(their documented /v1/models shapes, overflow errors and llama.cpp's 500 on bad tool JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY, make_k2_env
from test_loop import FINAL, MODEL, of, run
from test_loop import repo as repo  # the fixture

from k2lsp.agent.events import Event, Outcome
from k2lsp.config import Settings
from k2lsp.errors import ContextOverflow, HistoryRejected, RetryDelayTooLong
from k2lsp.model.client import K2Client
from k2lsp.model.fake_hosts import overflow_error
from k2lsp.model.fake_script import Fault, Reply
from k2lsp.model.fake_server import FakeK2Server

HOSTS = ["llamacpp", "vllm", "sglang", "ollama", "lmstudio"]
SOURCES = {
    "llamacpp": "meta.n_ctx",
    "vllm": "max_model_len",
    "sglang": "max_model_len",
    "ollama": "/api/show",
    "lmstudio": "/api/v0/models",
}
USER = [{"role": "user", "content": "hi"}]


def settings(srv: FakeK2Server, **kw: Any) -> Settings:
    """Client settings for `srv` (fast retries)."""
    base: dict[str, Any] = dict(
        provider="openai-compatible",
        base_url=srv.base_url,
        model=MODEL,
        api_key=TEST_KEY,
        retry_base_delay_s=0.01,
        retry_max_delay_s=0.02,
    )
    base.update(kw)
    return Settings(**base)


@pytest.mark.parametrize("host", HOSTS)
async def test_context_window_is_detected_with_its_source(host: str) -> None:
    with FakeK2Server(
        [Reply(reasoning="r", content="ok")], models=[MODEL], host=host, context_limit=40_000
    ) as srv:
        client = K2Client(settings(srv))
        window, source = await client.detect_context()
        await client.complete(USER)
        await client.aclose()
        sent = srv.requests[0]["max_tokens"]
    assert window == 40_000 and SOURCES[host] in source
    assert sent <= 40_000 - 10  # max_tokens bounded by the detected window, not 32k default


def test_models_command_shows_the_window_and_where_it_came_from(tmp_path: Path) -> None:
    with FakeK2Server([], models=[MODEL], host="llamacpp", context_limit=8192) as srv:
        env = make_k2_env(srv.base_url)
        env.update(XDG_CONFIG_HOME=str(tmp_path), K2LSP_STATE_DIR=str(tmp_path / "state"))
        proc = subprocess.run(
            [sys.executable, "-m", "k2lsp", "models"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert "8,192" in proc.stdout and "meta.n_ctx" in proc.stdout


def test_doctor_shows_the_window_and_where_it_came_from(tmp_path: Path) -> None:
    with FakeK2Server([], models=[MODEL], host="sglang", context_limit=32_768) as srv:
        env = make_k2_env(srv.base_url)
        env.update(XDG_CONFIG_HOME=str(tmp_path), K2LSP_STATE_DIR=str(tmp_path / "state"))
        proc = subprocess.run(
            [sys.executable, "-m", "k2lsp", "doctor", "--repo", str(tmp_path), "--skip-tests"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("[ok] model:")), "")
    assert "32,768" in line and "max_model_len" in line, proc.stdout + proc.stderr


def test_setting_beats_detection_and_is_named_as_source() -> None:
    with FakeK2Server([], models=[MODEL], host="vllm", context_limit=8192) as srv:
        client = K2Client(settings(srv, context_length=4096))
        assert client.context_length == 4096 and "context_length" in client.context_source


@pytest.mark.parametrize("host", ["llamacpp", "vllm", "sglang", "lmstudio"])
async def test_each_hosts_overflow_answer_is_a_context_overflow(host: str) -> None:
    # The user claims a bigger window than the server has: the server's own answer must be
    # recognised (it is not retried as a bad request or a transient error).
    big = [{"role": "user", "content": "word " * 3000}]
    with FakeK2Server([], models=[MODEL], host=host, context_limit=2000) as srv:
        client = K2Client(settings(srv, context_length=262_144, max_output_tokens=16_000))
        with pytest.raises(ContextOverflow):
            await client.complete(big)
        await client.aclose()
        assert len(srv.requests) == 1


@pytest.mark.parametrize("host", ["llamacpp", "vllm", "sglang"])
async def test_a_host_overflow_is_survived_by_compaction(
    repo: Path, tmp_path: Path, host: str
) -> None:
    reads = [
        Reply(reasoning=f"read {p}", tool_calls=[("read_file", {"path": p})])
        for p in ["README.md", "textstats/stats.py", "tests/test_stats.py", "pyproject.toml"]
    ]
    err = overflow_error(host, 9000, 4000, 8192)
    script = [*reads, Fault.raw(err.status, err.body), FINAL]
    with FakeK2Server(script, models=[MODEL], host=host) as srv:
        result, events = await run(srv, repo, tmp_path)
        failed, retried = srv.requests[-2], srv.requests[-1]
    assert result.outcome is Outcome.NO_CHANGE, result.summary
    assert len(json.dumps(retried["messages"])) < len(json.dumps(failed["messages"]))
    compacting = [d["message"] for d in of(events, "status") if d["phase"] == "compacting"]
    assert any("host reported a context overflow" in m for m in compacting)


BAD_ARGUMENTS = [
    ('{"path": "REA', None),  # cut by the output limit
    ('{"path": "README.md"} and then some', "stop"),  # valid object + trailing text
    ('{"path": "README.md"}{"path": "x"}', "tool_calls"),  # two objects
    ('[{"path": "README.md"}]', "tool_calls"),  # an array
    ('"{\\"path\\": \\"README.md\\"}"', "tool_calls"),  # a string holding JSON
    ('```json\n{"path": "README.md"}\n```', "tool_calls"),  # a code fence
]


@pytest.mark.parametrize(("arguments", "finish"), BAD_ARGUMENTS)
async def test_a_call_that_is_not_one_json_object_is_not_run_nor_echoed_raw(
    repo: Path, tmp_path: Path, arguments: str, finish: str | None
) -> None:
    bad = Reply(reasoning="r", tool_calls=[("read_file", arguments)], finish_reason=finish)
    with FakeK2Server([bad, FINAL], models=[MODEL], host="llamacpp") as srv:
        result, events = await run(srv, repo, tmp_path)
        follow = srv.requests[1]["messages"]
        rejected = srv.rejected
    assert rejected == []  # llama.cpp would answer 500 to a raw echo
    assert result.outcome is Outcome.NO_CHANGE, result.summary
    echoed = follow[-2]["tool_calls"][0]["function"]["arguments"]
    assert echoed == "{}"
    assert follow[-1]["role"] == "tool" and "was NOT run" in follow[-1]["content"]
    assert of(events, "tool_call")[0]["args"] == arguments  # the user sees what arrived
    assert of(events, "tool_result")[0]["ok"] is False


async def test_a_call_cut_by_length_is_never_run_even_when_its_json_closes(
    repo: Path, tmp_path: Path
) -> None:
    cut = Reply(
        reasoning="r",
        tool_calls=[("read_file", {"path": "README.md"}), ("delete_file", {"path": "README.md"})],
        finish_reason="length",
    )
    with FakeK2Server([cut, FINAL], models=[MODEL], host="llamacpp") as srv:
        result, events = await run(srv, repo, tmp_path)
        follow = srv.requests[1]["messages"]
    results = of(events, "tool_result")
    assert [r["ok"] for r in results] == [True, False]  # the complete first call ran
    assert "finish_reason 'length'" in follow[-1]["content"]
    assert follow[-3]["tool_calls"][1]["function"]["arguments"] == "{}"
    assert result.outcome is Outcome.NO_CHANGE  # README.md was not deleted


async def test_valid_calls_are_echoed_byte_for_byte(repo: Path, tmp_path: Path) -> None:
    raw = '{ "path" : "README.md" }'
    script = [Reply(reasoning="r", tool_calls=[("read_file", raw)]), FINAL]
    with FakeK2Server(script, models=[MODEL], host="llamacpp") as srv:
        await run(srv, repo, tmp_path)
        follow = srv.requests[1]["messages"]
    assert follow[-2]["tool_calls"][0]["function"]["arguments"] == raw


async def test_llamacpp_rejecting_the_history_is_not_retried_unchanged() -> None:
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "reasoning_content": "r",
            "tool_calls": [
                {
                    "id": "functions.read_file:0",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "x"},
    ]
    with FakeK2Server([FINAL], models=[MODEL], host="llamacpp") as srv:
        client = K2Client(settings(srv))
        with pytest.raises(HistoryRejected, match="not retried"):
            await client.complete(history)
        await client.aclose()
        assert len(srv.requests) == 1


async def test_every_failed_attempt_counts_toward_the_budget(repo: Path, tmp_path: Path) -> None:
    script = [Fault.cut(4), Fault.http(500, "server_error", "boom"), FINAL]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, events = await run(
            srv, repo, tmp_path, retry_base_delay_s=0.01, retry_max_delay_s=0.02
        )
    usage = of(events, "usage")
    failed = [u for u in usage if u["attempt_failed"]]
    assert len(failed) == 2 and all(u["estimated"] for u in failed)
    assert all(u["prompt_tokens"] > 0 for u in failed)
    assert usage[-1]["attempt_failed"] is False and usage[-1]["estimated"] is False
    total = sum(u["prompt_tokens"] for u in usage)
    assert usage[-1]["total_prompt_tokens"] == total == result.usage.prompt_tokens


async def test_failed_attempts_count_when_the_call_gives_up(repo: Path, tmp_path: Path) -> None:
    script = [Fault.http(503, "server_error", "down")] * 3
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, events = await run(
            srv, repo, tmp_path, max_retries=2, retry_base_delay_s=0.01, retry_max_delay_s=0.02
        )
    assert result.outcome is Outcome.PROVIDER_ERROR
    failed = [u for u in of(events, "usage") if u["attempt_failed"]]
    assert len(failed) == 3 and result.usage.prompt_tokens == sum(
        u["prompt_tokens"] for u in failed
    )


async def test_a_retry_after_above_the_cap_ends_the_run_naming_the_delay(
    repo: Path, tmp_path: Path
) -> None:
    busy = Fault.http(
        429, "rate_limit_reached_error", "slow down", headers={"Retry-After": "86400"}
    )
    with FakeK2Server([busy, FINAL], models=[MODEL]) as srv:
        started = time.monotonic()
        result, _ = await run(srv, repo, tmp_path)
        took = time.monotonic() - started
        asked = len(srv.requests)
    assert result.outcome is Outcome.PROVIDER_ERROR and asked == 1
    assert "86400 s" in result.summary and "max_retry_after_s" in result.summary
    assert took < 3600  # not slept (a sanity bound, not a timing assertion)


async def test_a_retry_after_under_the_cap_is_honoured() -> None:
    busy = Fault.http(429, "rate_limit_reached_error", "wait", headers={"Retry-After": "0"})
    with FakeK2Server([busy, FINAL], models=[MODEL]) as srv:
        client = K2Client(settings(srv, max_retry_after_s=5))
        turn = await client.complete(USER)
        await client.aclose()
    assert turn.content == "Done."


async def test_retry_delay_error_is_typed() -> None:
    busy = Fault.http(429, "rate_limit_reached_error", "try again after 600 seconds")
    with FakeK2Server([busy], models=[MODEL]) as srv:
        client = K2Client(settings(srv, max_retry_after_s=120))
        with pytest.raises(RetryDelayTooLong) as info:
            await client.complete(USER)
        await client.aclose()
    assert info.value.delay_s == 600 and "600 s" in str(info.value)


@pytest.mark.parametrize("host", ["llamacpp", "vllm", "sglang", "lmstudio"])
def test_the_prompt_size_a_host_states_in_its_overflow_is_read(host: str) -> None:
    from k2lsp.model.errors import classify_status

    err = overflow_error(host, 9123, 4000, 8192)
    failure = classify_status(err.status, err.body, key_hint="K2LSP_API_KEY")
    assert isinstance(failure.error, ContextOverflow) and not failure.retry
    assert failure.error.prompt_tokens == 9123


async def test_a_history_llamacpp_rejects_is_repaired_once_not_resent(tmp_path: Path) -> None:
    from test_loop_tools import make_loop

    from k2lsp.agent.prompts import initial_messages
    from k2lsp.tools import build_registry

    bad_call = {
        "id": "functions.read_file:0",
        "type": "function",
        "function": {"name": "read_file", "arguments": '{"path": "a.py"} trailing'},
    }
    history = [
        *initial_messages("go"),
        {"role": "assistant", "reasoning_content": "r", "tool_calls": [bad_call]},
        {"role": "tool", "tool_call_id": "functions.read_file:0", "content": "x"},
    ]
    events: list[Event] = []
    with FakeK2Server([FINAL], models=[MODEL], host="llamacpp") as srv:
        loop = make_loop(srv, tmp_path, events, build_registry())
        result = await loop.run(history)
        sent = [_args(body) for body in srv.requests]
        rejected = srv.rejected
    assert result.summary == "Done."
    assert len(rejected) == 1 and "Failed to parse tool call arguments" in rejected[0][1]
    assert sent == [['{"path": "a.py"} trailing'], ["{}"]]  # repaired, never resent as is


def _args(body: dict[str, Any]) -> list[str]:
    return [
        c["function"]["arguments"]
        for m in body["messages"]
        if m.get("role") == "assistant"
        for c in m.get("tool_calls") or []
    ]
