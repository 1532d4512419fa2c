"""Unit tests of the loop's parts: budgets, the repeat guard, compaction, trajectory, prompts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from k2lsp.agent.budgets import Budget
from k2lsp.agent.compaction import (
    NOTE_MARK,
    REASONING_PLACEHOLDER,
    Ledger,
    compact,
    should_compact,
)
from k2lsp.agent.events import Emitter, Event
from k2lsp.agent.guards import RepeatGuard
from k2lsp.agent.prompts import initial_messages, system_prompt
from k2lsp.agent.trajectory import Trajectory, replay_requests
from k2lsp.errors import BudgetExhausted
from k2lsp.model.types import Usage
from k2lsp.redact import register_secret


def test_step_budget_stops_after_max_steps_with_flag_hint() -> None:
    budget = Budget(max_steps=2)
    assert budget.begin_step() == 1
    assert budget.begin_step() == 2
    with pytest.raises(BudgetExhausted, match="--max-steps"):
        budget.begin_step()


@pytest.mark.parametrize(
    ("budget", "usage", "flag"),
    [
        (Budget(max_tokens=100), Usage(prompt_tokens=80, completion_tokens=30), "--max-tokens"),
        (Budget(max_usd=0.01), Usage(cost_usd=0.02), "--budget-usd"),
    ],
)
def test_token_and_cost_budgets_name_their_flag(budget: Budget, usage: Usage, flag: str) -> None:
    budget.add_usage(usage)
    with pytest.raises(BudgetExhausted, match=flag):
        budget.check()


def test_time_budget() -> None:
    budget = Budget(timeout_s=0.01)
    time.sleep(0.02)
    with pytest.raises(BudgetExhausted, match="--timeout"):
        budget.begin_step()
    assert Budget().remaining_time() is None


def test_guard_blocks_the_third_identical_call_and_stops_if_it_persists() -> None:
    guard = RepeatGuard(3)
    assert guard.check("read_file", {"path": "a.py"}) is None
    assert guard.check("read_file", {"path": "a.py"}) is None
    message = guard.check("read_file", {"path": "a.py"})
    assert message is not None and "Change approach" in message
    assert guard.check("read_file", {"path": "a.py"}) is not None
    with pytest.raises(BudgetExhausted, match="repeated the same read_file call"):
        guard.check("read_file", {"path": "a.py"})


def test_guard_uses_canonical_args_and_resets_on_a_different_call() -> None:
    guard = RepeatGuard(3)
    guard.check("search", {"pattern": "x", "path": "."})
    guard.check("search", {"path": ".", "pattern": "x"})  # same call, other key order
    assert guard.check("search", {"pattern": "x", "path": "."}) is not None
    assert guard.check("read_file", {"path": "a.py"}) is None
    assert guard.check("search", {"pattern": "x", "path": "."}) is None


def _history(n_units: int, result_size: int = 1000) -> list[dict]:
    msgs = initial_messages("fix the bug")
    for i in range(n_units):
        msgs.append(
            {
                "role": "assistant",
                "reasoning_content": f"thinking {i}",
                "tool_calls": [
                    {
                        "id": f"functions.read_file:{i}",
                        "type": "function",
                        "function": {
                            "name": "read_file",
                            "arguments": json.dumps({"path": f"f{i}.py"}),
                        },
                    }
                ],
            }
        )
        msgs.append(
            {
                "role": "tool",
                "tool_call_id": f"functions.read_file:{i}",
                "content": f"1: line of f{i}\n" + "x" * result_size,
            }
        )
    return msgs


def _assert_pairs_whole(msgs: list[dict]) -> None:
    for i, m in enumerate(msgs):
        if m.get("role") == "assistant" and m.get("tool_calls"):
            ids = [c["id"] for c in m["tool_calls"]]
            following = [x["tool_call_id"] for x in msgs[i + 1 : i + 1 + len(ids)]]
            assert following == ids
        if m.get("role") == "tool":
            prev = msgs[i - 1]
            assert prev.get("role") in ("assistant", "tool")


def test_compaction_keeps_head_ledger_and_whole_recent_pairs() -> None:
    msgs = _history(10)
    ledger = Ledger(goal="fix the bug")
    ledger.touch("src/a.py")
    ledger.last_test = "1 passed, 1 failed, 0 errors (pytest)"
    out = compact(msgs, ledger, keep_chars=3000)
    assert out[:2] == msgs[:2]
    assert out[2]["role"] == "user" and out[2]["content"].startswith(NOTE_MARK)
    assert ledger.render() in out[2]["content"]
    assert 'read_file({"path":"f0.py"}) -> 1: line of f0' in out[2]["content"]
    assert out[-1] == msgs[-1] and out[-2] == msgs[-2]
    assert len(out) < len(msgs)
    _assert_pairs_whole(out[3:])
    assert msgs == _history(10)  # input untouched


def test_compaction_twice_keeps_the_earlier_summary() -> None:
    ledger = Ledger(goal="g")
    once = compact(_history(10), ledger, keep_chars=3000)
    twice = compact(once + _history(3)[2:], ledger, keep_chars=1500, max_units=1)
    assert "f0.py" in twice[2]["content"] and twice[2]["content"].count(NOTE_MARK) == 1


def test_compaction_shrinks_a_single_huge_pair_without_splitting_it() -> None:
    msgs = _history(1, result_size=200_000)
    out = compact(msgs, Ledger(goal="g"), keep_chars=20_000)
    assert out[-2]["tool_calls"] == msgs[-2]["tool_calls"]
    assert out[-1]["tool_call_id"] == msgs[-1]["tool_call_id"]
    assert len(out[-1]["content"]) < 25_000 and "characters omitted" in out[-1]["content"]


def test_compaction_drops_reasoning_before_the_current_tool_loop() -> None:
    msgs = _history(2)
    msgs.append({"role": "assistant", "reasoning_content": "final thoughts", "content": "Done."})
    msgs.append({"role": "user", "content": "now also fix b"})
    msgs += _history(1)[2:]
    out = compact(msgs, Ledger(goal="g"), keep_chars=10**9, max_units=4)
    old_call = out[3]
    assert old_call["reasoning_content"] == REASONING_PLACEHOLDER
    final = next(m for m in out if m.get("content") == "Done.")
    assert "reasoning_content" not in final
    assert out[-2]["reasoning_content"] == "thinking 0"  # current loop keeps its reasoning


def test_should_compact_thresholds() -> None:
    assert not should_compact(150_000, 262_144)
    assert should_compact(215_000, 262_144)  # under 50k left
    assert should_compact(28_000, 32_000)


def test_ledger_follows_edit_and_test_events() -> None:
    ledger = Ledger(goal="g")
    em = Emitter("r1", [ledger.on_event])
    em.emit("edit", path="a.py", diff="")
    em.emit("test_result", passed=3, failed=1, errors=0, skipped=0, command="pytest", duration=1.0)
    assert ledger.files_touched == ["a.py"]
    assert ledger.last_test.startswith("3 passed, 1 failed")


def test_trajectory_redacts_and_replays_requests(tmp_path: Path) -> None:
    secret = "sk-test-trajectory-secret-abcdef123456"
    register_secret(secret)
    traj = Trajectory(tmp_path / "t.jsonl")
    first = initial_messages(f"task mentioning {secret}")
    traj.request("r1", 1, first, [{"type": "function"}])
    second = [*first, {"role": "assistant", "content": "ok"}]
    traj.request("r1", 2, second, [{"type": "function"}])
    traj.event(Event("content", "r1", 1, {"text": secret}))
    traj.close()
    text = (tmp_path / "t.jsonl").read_text()
    assert secret not in text and "[REDACTED]" in text
    replayed = replay_requests(tmp_path / "t.jsonl")
    assert len(replayed) == 2 and len(replayed[1]) == 3
    assert json.loads(text.splitlines()[1])["base"] == 2


def test_system_prompt_is_stable_and_read_only_modes_say_so() -> None:
    assert system_prompt("task") == system_prompt("task")
    assert "read-only" in system_prompt("ask", read_only=True)
    assert "read-only" not in system_prompt("task")
    msgs = initial_messages(
        "explain x", mode="explain", context="def x(): ...", focus_paths=["a.py"]
    )
    assert "def x()" in msgs[1]["content"] and "a.py" in msgs[1]["content"]


def test_compaction_with_nothing_to_drop_keeps_the_history_object() -> None:
    msgs = _history(1)
    assert compact(msgs, Ledger(goal="g"), keep_chars=10**9) is msgs
