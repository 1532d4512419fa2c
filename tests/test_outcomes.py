"""Outcomes that mean it: `no_change` for an editing run that did nothing, the repeat guard
catching cycles of calls, and the editor's default wall-time budget."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from test_loop import FINAL, MODEL, TEST_COMMAND, of, run
from test_loop import repo as repo  # the fixture

from k2lsp.agent.budgets import EDITOR_DEFAULT_TIMEOUT_S, with_editor_defaults
from k2lsp.agent.events import Outcome
from k2lsp.agent.guards import RepeatGuard
from k2lsp.config import Settings
from k2lsp.errors import BudgetExhausted
from k2lsp.model.fake_script import Reply
from k2lsp.model.fake_server import FakeK2Server

ANSWER = Reply(reasoning="easy", content="The test should pass now.")


async def test_a_plain_answer_to_an_editing_task_is_no_change_exit_7(
    repo: Path, tmp_path: Path
) -> None:
    with FakeK2Server([ANSWER], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.NO_CHANGE and result.outcome.exit_code == 7
    assert "The test should pass now." in result.summary and "no_change" in result.summary
    assert of(events, "run_finished")[0]["exit_code"] == 7


async def test_a_question_answered_without_change_is_success(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server([ANSWER], models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path, mode="ask", task="What does stats do?")
    assert result.outcome is Outcome.SUCCESS


async def test_no_change_after_the_tests_ran_is_judged_by_the_tests(
    repo: Path, tmp_path: Path
) -> None:
    script = [Reply(reasoning="check", tool_calls=[("run_tests", {})]), FINAL]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path, test_command=TEST_COMMAND)
    assert result.outcome is Outcome.TESTS_FAILED  # the demo repo has a failing test


async def test_a_run_that_changed_a_file_is_success(repo: Path, tmp_path: Path) -> None:
    edit = ("create_file", {"path": "NOTES.md", "content": "notes\n"})
    script = [Reply(reasoning="write", tool_calls=[edit]), FINAL]
    with FakeK2Server(script, models=[MODEL]) as srv:
        result, _ = await run(srv, repo, tmp_path)
    assert result.outcome is Outcome.SUCCESS and result.changes


CALLS = [("list_files", {"path": p}) for p in ("a", "b", "c", "d")]


@pytest.mark.parametrize("size", [2, 3, 4])
def test_a_cycle_of_calls_is_blocked_on_its_third_round(size: int) -> None:
    guard = RepeatGuard()
    cycle = CALLS[:size]
    verdicts = [guard.check(n, a) for n, a in cycle * 3]
    assert verdicts[:-1] == [None] * (3 * size - 1)
    assert verdicts[-1] is not None and f"same {size} calls" in verdicts[-1]


def test_varied_calls_are_never_blocked() -> None:
    guard = RepeatGuard()
    calls = [("read_file", {"path": f"f{i % 5}.py", "start_line": i}) for i in range(40)]
    calls += [(n, a) for n, a in itertools.islice(itertools.cycle(CALLS), 9)]  # A B C D A B C D A
    assert all(guard.check(n, a) is None for n, a in calls)


def test_a_model_that_keeps_cycling_is_stopped() -> None:
    guard = RepeatGuard()
    with pytest.raises(BudgetExhausted, match="cycle of 3 calls"):
        for n, a in CALLS[:3] * 10:
            guard.check(n, a)


async def test_the_loop_tells_the_model_about_a_cycle(repo: Path, tmp_path: Path) -> None:
    rounds = [
        Reply(reasoning="look", tool_calls=[("list_files", {"path": p})])
        for p in ["textstats", "tests", "."] * 3
    ]
    with FakeK2Server([*rounds, FINAL], models=[MODEL]) as srv:
        result, events = await run(srv, repo, tmp_path)
        last = srv.requests[9]["messages"][-1]
    assert [d["ok"] for d in of(events, "tool_result")] == [True] * 8 + [False]
    assert "NOT run" in last["content"] and "list_files" in last["content"]
    assert result.outcome is Outcome.NO_CHANGE


@pytest.mark.parametrize(("given", "expected"), [(None, EDITOR_DEFAULT_TIMEOUT_S), (60.0, 60.0)])
def test_editor_runs_get_a_default_wall_time(given: float | None, expected: float) -> None:
    settings: Any = Settings(timeout_s=given)
    assert with_editor_defaults(settings).timeout_s == expected
