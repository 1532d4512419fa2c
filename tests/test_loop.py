"""The agent loop end to end in-process: the real K2 client (openai SDK) against the fake K2
server over real HTTP, real tools, real run copies of temporary git repositories."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY

from k2lsp.agent.events import Event
from k2lsp.agent.session import RunRequest, RunResult, execute_run
from k2lsp.config.settings import Settings
from k2lsp.demo.demo import SESSION, make_repo
from k2lsp.errors import Outcome
from k2lsp.fake.script import Fault, Reply, load_script
from k2lsp.fake.server import FakeK2Server

MODEL = "kimi-k2-thinking"
FINAL = Reply(reasoning="All done.", content="Done.")
TEST_COMMAND = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider"
OVERFLOW = Fault.http(400, "invalid_request_error", "Input token length too long")


def settings_for(srv: FakeK2Server, tmp_path: Path, **kw: Any) -> Settings:
    """Settings pointing at `srv`, no sandbox, state under tmp_path."""
    base = dict(
        provider="openai-compatible",
        base_url=srv.base_url,
        model=MODEL,
        api_key=TEST_KEY,
        sandbox="none",
        state_dir=tmp_path / "state",
        test_command=TEST_COMMAND,
    )
    base.update(kw)
    return Settings(**base)


async def run(
    srv: FakeK2Server,
    repo: Path,
    tmp_path: Path,
    *,
    mode: str = "task",
    task: str = "Fix the failing test.",
    **kw: Any,
) -> tuple[RunResult, list[Event]]:
    """Run one task; returns the result and every event."""
    events: list[Event] = []
    result = await execute_run(
        RunRequest(task=task, repo=repo, mode=mode),
        settings_for(srv, tmp_path, **kw),
        [events.append],
    )
    if result.run_copy is not None:
        result.run_copy.cleanup()
    return result, events


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The demo's example repository (one failing test), committed in a fresh git repo."""
    (tmp_path / "src").mkdir()
    return make_repo(tmp_path / "src")


def of(events: list[Event], type_: str) -> list[dict[str, Any]]:
    """The data of every event of `type_`."""
    return [e.data for e in events if e.type == type_]


def recorded_session() -> list[Any]:
    """The demo's recorded session without streaming delays."""
    return load_script([{**o, "delay_s": 0.0} for o in json.loads(SESSION.read_text())])


async def test_run_fixes_the_failing_test(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server(recorded_session(), models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.SUCCESS, result.summary
    assert result.changes.paths() == ["textstats/stats.py"]
    assert "+    return len(text.split())" in result.changes.diff()
    assert of(events, "test_result")[-1]["failed"] == 0
    assert next(e.type for e in events) == "run_started" and events[-1].type == "run_finished"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (repo / "textstats/stats.py").read_text().count('split(" ")') == 1  # user tree untouched


async def test_history_echoes_reasoning_and_keeps_the_prefix_stable(
    repo: Path, tmp_path: Path
) -> None:
    script = recorded_session()
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path)
        requests = srv.requests
    assert result.outcome is Outcome.SUCCESS
    first_reply = requests[1]["messages"][2]
    assert first_reply["reasoning_content"] == script[0].reasoning  # byte for byte
    assert first_reply["tool_calls"][0]["id"] == "functions.list_files:0"
    for prev, nxt in itertools.pairwise(requests):
        assert nxt["messages"][: len(prev["messages"])] == prev["messages"]
        assert nxt["tools"] == prev["tools"]


async def test_one_tool_message_per_call_in_call_order(repo: Path, tmp_path: Path) -> None:
    calls = [
        ("read_file", {"path": "README.md"}),
        ("list_files", {}),
        ("read_file", {"path": "nope.py"}),
    ]
    with FakeK2Server([Reply(reasoning="look", tool_calls=calls), FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
        msgs = srv.requests[1]["messages"]
    assert result.outcome is Outcome.NO_CHANGE
    ids = [c["id"] for c in msgs[2]["tool_calls"]]
    assert [m["role"] for m in msgs[3:]] == ["tool"] * 3
    assert [m["tool_call_id"] for m in msgs[3:]] == ids
    assert all(isinstance(m["content"], str) and m["content"] for m in msgs[3:])
    assert [d["ok"] for d in of(events, "tool_result")] == [True, True, False]


async def test_stream_cut_mid_tool_call_runs_no_tool_from_it(repo: Path, tmp_path: Path) -> None:
    cut_reply = Reply(
        reasoning="x", tool_calls=[("create_file", {"path": "CUT.txt", "content": "cut"})]
    )
    script = [Fault.cut(3, cut_reply), FINAL]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.NO_CHANGE
    assert of(events, "tool_call") == []
    assert not result.changes


async def test_invalid_argument_json_is_a_tool_error_and_the_loop_goes_on(
    repo: Path, tmp_path: Path
) -> None:
    script = [Reply(reasoning="r", tool_calls=[("read_file", "not json at all")]), FINAL]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
        last = srv.requests[1]["messages"][-1]
    assert result.outcome is Outcome.NO_CHANGE
    assert last["role"] == "tool" and "not valid JSON" in last["content"]
    assert of(events, "tool_result")[0]["ok"] is False


async def test_repeated_identical_call_is_not_run_a_third_time(repo: Path, tmp_path: Path) -> None:
    same = Reply(reasoning="again", tool_calls=[("read_file", {"path": "README.md"})])
    with FakeK2Server([same, same, same, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
        third = srv.requests[3]["messages"][-1]
    assert result.outcome is Outcome.NO_CHANGE
    assert [d["ok"] for d in of(events, "tool_result")] == [True, True, False]
    assert "NOT run again" in third["content"]


async def test_persistent_repetition_ends_with_budget_exhausted(repo: Path, tmp_path: Path) -> None:
    same = Reply(reasoning="again", tool_calls=[("read_file", {"path": "README.md"})])
    with FakeK2Server([same] * 6 + [FINAL], models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.BUDGET_EXHAUSTED
    assert "repeated the same read_file call" in result.summary


async def test_step_budget(repo: Path, tmp_path: Path) -> None:
    look = Reply(reasoning="look", tool_calls=[("list_files", {})])
    other = Reply(reasoning="read", tool_calls=[("read_file", {"path": "README.md"})])
    with FakeK2Server([look, other, look, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path, max_steps=2)
        assert len(srv.requests) == 2
    assert result.outcome is Outcome.BUDGET_EXHAUSTED and "--max-steps" in result.summary
    assert events[-1].data["exit_code"] == 4
    steps = [d["message"] for d in of(events, "status") if d["phase"] != "preflight"]
    assert steps == ["step 1 of 2", "step 2 of 2"]
    assert of(events, "status")[0]["phase"] == "preflight"  # sandbox, env, tests


async def test_token_budget_and_running_usage_totals(repo: Path, tmp_path: Path) -> None:
    look = Reply(
        reasoning="look", tool_calls=[("list_files", {})], prompt_tokens=600, completion_tokens=100
    )
    with FakeK2Server([look, look, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path, max_tokens=1000)
    assert result.outcome is Outcome.BUDGET_EXHAUSTED and "--max-tokens" in result.summary
    usage = of(events, "usage")
    assert [u["total_prompt_tokens"] for u in usage] == [600, 1200]
    assert result.usage.completion_tokens == 200


async def test_time_budget_interrupts_a_hanging_request(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server([Reply(reasoning="slow", content="x", hold=True)], models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path, timeout_s=1.0)
    assert result.outcome is Outcome.BUDGET_EXHAUSTED and "--timeout" in result.summary


async def test_quota_exhausted_is_a_provider_error(repo: Path, tmp_path: Path) -> None:
    fault = Fault.http(429, "exceeded_current_quota_error", "Your account has no balance")
    with FakeK2Server([fault], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.PROVIDER_ERROR
    assert events[-1].data["exit_code"] == 3


async def test_cancelling_the_task_ends_with_cancelled(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server([Reply(reasoning="thinking slowly", hold=True)], models=[MODEL]) as srv:
        task = asyncio.create_task(run(srv, repo, tmp_path))
        assert await asyncio.to_thread(srv.wait_held, 30)
        task.cancel()
        result, events = await task
    assert result.outcome is Outcome.CANCELLED
    assert events[-1].type == "run_finished" and events[-1].data["exit_code"] == 130
    assert not result.changes


async def test_context_overflow_compacts_then_retries_once(repo: Path, tmp_path: Path) -> None:
    reads = [
        Reply(reasoning=f"read {i}", tool_calls=[("read_file", {"path": p})])
        for i, p in enumerate(
            [
                "README.md",
                "textstats/stats.py",
                "tests/test_stats.py",
                "textstats/__init__.py",
                "pyproject.toml",
            ]
        )
    ]
    with FakeK2Server([*reads, OVERFLOW, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
        failed, retried = srv.requests[-2], srv.requests[-1]
    assert result.outcome is Outcome.NO_CHANGE
    assert len(json.dumps(retried["messages"])) < len(json.dumps(failed["messages"]))
    assert retried["messages"][:2] == failed["messages"][:2]
    note = retried["messages"][2]["content"]
    assert "## Task ledger" in note and "Goal: Fix the failing test." in note
    assert 'read_file({"path":"README.md"})' in note
    kept = retried["messages"][3:]
    assert kept and kept[0]["role"] == "assistant"
    for i, msg in enumerate(kept):
        if msg.get("tool_calls"):
            ids = [c["id"] for c in msg["tool_calls"]]
            assert [m.get("tool_call_id") for m in kept[i + 1 : i + 1 + len(ids)]] == ids
    assert kept == failed["messages"][-len(kept) :]
    assert any(d["phase"] == "compacting" for d in of(events, "status"))


async def test_a_second_overflow_is_retried_after_a_harder_compaction(
    repo: Path, tmp_path: Path
) -> None:
    look = Reply(reasoning="look", tool_calls=[("list_files", {})])
    with FakeK2Server([look, OVERFLOW, OVERFLOW, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
        sizes = [len(json.dumps(r["messages"])) for r in srv.requests]
    assert result.outcome is not Outcome.PROVIDER_ERROR, result.summary
    # each overflow was followed by a request no larger (compacted when there was anything
    # to fold), and the third one was answered
    assert len(sizes) == 4 and sizes[3] <= sizes[2] <= sizes[1], sizes
    assert events[-1].type == "run_finished"


async def test_a_third_overflow_is_a_provider_error(repo: Path, tmp_path: Path) -> None:
    look = Reply(reasoning="look", tool_calls=[("list_files", {})])
    with FakeK2Server([look, OVERFLOW, OVERFLOW, OVERFLOW, FINAL], models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.PROVIDER_ERROR


async def test_read_only_modes_get_no_editing_tools(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server([Reply(reasoning="r", content="It counts words.")], models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path, mode="ask", task="What does word_count do?")
        names = {t["function"]["name"] for t in srv.requests[0]["tools"]}
    assert result.outcome is Outcome.SUCCESS and result.summary == "It counts words."
    assert "read_file" in names
    assert not names & {"edit_file", "create_file", "delete_file", "apply_patch", "replace_symbol"}


async def test_failing_last_test_run_gives_tests_failed(repo: Path, tmp_path: Path) -> None:
    script = [
        Reply(reasoning="run", tool_calls=[("run_tests", {})]),
        Reply(reasoning="meh", content="Gave up."),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.TESTS_FAILED
    assert events[-1].data["exit_code"] == 1


async def test_api_key_never_reaches_events_or_trajectory(repo: Path, tmp_path: Path) -> None:
    leak = Reply(
        reasoning="r", tool_calls=[("create_file", {"path": "k.txt", "content": TEST_KEY})]
    )
    with FakeK2Server([leak, *recorded_session()], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    dumped = json.dumps([e.to_dict() for e in events])
    assert result.trajectory is not None
    trajectory = result.trajectory.read_text()
    assert TEST_KEY not in dumped and TEST_KEY not in trajectory
    types = {json.loads(line)["type"] for line in trajectory.splitlines()}
    assert {"request", "response", "run_started", "tool_result", "run_finished"} <= types


async def test_a_key_streamed_in_fragments_never_reaches_the_joined_deltas(
    repo: Path, tmp_path: Path
) -> None:
    said = f"Found the key {TEST_KEY} in the env; " + "I will not use it. " * 30
    script = [
        Reply(reasoning=said, content=said, tool_calls=[("list_files", {})], chunk_size=2),
        Reply(reasoning=said, content="Done: " + said, chunk_size=3),
    ]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.NO_CHANGE, result.summary
    for kind in ("reasoning", "content"):
        joined = "".join(d["text"] for d in of(events, kind))
        assert TEST_KEY not in joined
        assert joined.count("[REDACTED]") == 2 and joined.count("I will not use it.") == 60
    types = [e.type for e in events]
    first_call = types.index("tool_call")
    last_text = max(i for i, t in enumerate(types) if t in ("reasoning", "content"))
    assert "content" not in types[first_call : types.index("tool_result")]  # flushed before
    assert types.index("content") > max(
        i for i, t in enumerate(types[:first_call]) if t == "reasoning"
    )  # the reasoning tail came before the first content
    assert last_text < types.index("run_finished")


async def test_unavailable_sandbox_ends_with_sandbox_unavailable(
    repo: Path, tmp_path: Path
) -> None:
    with FakeK2Server([FINAL], models=[MODEL]) as srv:
        result, events = await run(
            srv, repo, tmp_path, sandbox="docker", sandbox_image="k2lsp-test-no-such-image:0"
        )
    assert result.outcome is Outcome.SANDBOX_UNAVAILABLE
    assert events[-1].data["exit_code"] == 6


@pytest.mark.parametrize("where", ["missing", "file"])
async def test_missing_folder_is_a_usage_error(tmp_path: Path, where: str) -> None:
    from k2lsp.errors import UsageError

    target = tmp_path / "nope"
    if where == "file":
        target.write_text("x")
    with FakeK2Server([FINAL], models=[MODEL]) as srv, pytest.raises(UsageError, match="--repo"):
        await run(srv, target, tmp_path)


async def test_compaction_before_the_context_fills_up(repo: Path, tmp_path: Path) -> None:
    (repo / "big.txt").write_text("".join(f"line {i} of a long file\n" for i in range(2000)))
    reads = [
        Reply(
            reasoning=f"part {i}",
            tool_calls=[
                (
                    "read_file",
                    {"path": "big.txt", "start_line": 1 + 400 * i, "end_line": 400 * (i + 1)},
                )
            ],
        )
        for i in range(5)
    ]
    with FakeK2Server([*reads, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path, context_length=16_000)
        sizes = [len(json.dumps(r["messages"])) for r in srv.requests]
        srv_requests_last = srv.requests[-1]["messages"]
        notes = [
            r["messages"][2].get("content", "") for r in srv.requests if len(r["messages"]) > 2
        ]
    assert result.outcome is Outcome.NO_CHANGE
    assert any(d["phase"] == "compacting" for d in of(events, "status"))
    assert any("## Task ledger" in n for n in notes)
    last_tools = [m for m in srv_requests_last if m["role"] == "tool"]
    assert 1 <= len(last_tools) < 5  # older reads were summarised, the latest kept whole
    assert max(sizes) < 5 * sizes[1]


async def test_too_little_room_for_16k_compacts_instead_of_a_short_max_tokens(
    repo: Path, tmp_path: Path
) -> None:
    # Quotes and backslashes double in JSON: the loop's text-based estimate lags behind the
    # real prompt, so the client is the one that sees the room for the answer running out.
    (repo / "quoted.txt").write_text(('"\\' * 30 + "\n") * 1600)
    pages = [
        ("read_file", {"path": "quoted.txt", "start_line": 1 + 400 * i, "end_line": 400 * (i + 1)})
        for i in range(4)
    ]
    script = [
        Reply(reasoning="read", tool_calls=pages[:3]),
        Reply(reasoning="more", tool_calls=pages[3:]),
        FINAL,
    ]
    with FakeK2Server(script, models=[MODEL], context_limit=64_000) as srv:
        result, events = await run(srv, repo, tmp_path, context_length=64_000)
        sent = [r["max_tokens"] for r in srv.requests]
        rejected = srv.rejected
    assert result.outcome is Outcome.NO_CHANGE, result.summary
    assert rejected == [] and len(sent) == 3
    assert min(sent) >= 16_000
    compacting = [d["message"] for d in of(events, "status") if d["phase"] == "compacting"]
    assert compacting and not any("host reported" in m for m in compacting)


@pytest.mark.parametrize(
    ("mode", "call", "needle"),
    [
        ("task", ("rm_rf", {"path": "/"}), "there is no tool 'rm_rf'"),
        (
            "ask",
            ("edit_file", {"path": "README.md", "old_text": "a", "new_text": "b"}),
            "there is no tool 'edit_file'",
        ),
        ("task", ("read_file", {"no_path": 1}), "invalid arguments for read_file"),
    ],
)
async def test_bad_calls_from_the_model_become_tool_errors(
    repo: Path, tmp_path: Path, mode: str, call: tuple[str, dict[str, Any]], needle: str
) -> None:
    script = [Reply(reasoning="r", tool_calls=[call]), FINAL]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path, mode=mode)
        last = srv.requests[1]["messages"][-1]
    # an editing run that changed nothing is no_change; an ask run is answered
    assert result.outcome is (Outcome.SUCCESS if mode == "ask" else Outcome.NO_CHANGE)
    assert last["role"] == "tool" and needle in last["content"]
    assert not result.changes


async def test_cost_budget(repo: Path, tmp_path: Path) -> None:
    look = Reply(reasoning="look", tool_calls=[("list_files", {})], prompt_tokens=1000)
    prices = {"input_cache_hit": 100.0, "input": 100.0, "output": 100.0}  # USD per 1M tokens
    with FakeK2Server([look, look, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path, prices=prices, budget_usd=0.1)
        assert len(srv.requests) == 1
    assert result.outcome is Outcome.BUDGET_EXHAUSTED and "--budget-usd" in result.summary
    assert of(events, "usage")[0]["total_cost_usd"] >= 0.1
