"""Heavy mode's shared budget, queueing, cancel and judge, end to end (fake K2 host over real
HTTP, real git, bwrap)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from git_helpers import git
from heavy_helpers import (
    BUG,
    FIX,
    MODEL,
    TASK,
    candidate_scripts,
    heavy_settings,
    make_calc_repo,
    script_candidates,
)

from k2lsp.agent.events import Event
from k2lsp.agent.heavy.judge import JUDGE_MARKER
from k2lsp.agent.heavy.scheduler import run_heavy
from k2lsp.agent.session import RunRequest
from k2lsp.errors import Outcome
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    from k2lsp.sandbox import bwrap

    why = bwrap.problem()
    if why:
        pytest.skip(f"bwrap unavailable: {why}")


def of(events: list[Event], type_: str) -> list[dict[str, Any]]:
    """The data of every event of `type_`."""
    return [e.data for e in events if e.type == type_]


def nothing_left(tmp_path: Path, repo: Path) -> None:
    """No run copy, no k2lsp branch, the user's tree untouched."""
    runs = tmp_path / "state" / "runs"
    assert not list(runs.iterdir() if runs.is_dir() else [])
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""
    assert git(repo, "status", "--porcelain").strip() == ""


async def heavy(
    tmp_path: Path, srv: FakeK2Server, n: int, **kw: Any
) -> tuple[Any, list[Event], Path]:
    """One heavy run of `n` candidates on a fresh calculator repository."""
    repo = make_calc_repo(tmp_path / "repo")
    events: list[Event] = []
    settings = heavy_settings(srv, tmp_path, "bwrap", **kw)
    out = await run_heavy(RunRequest(task=TASK, repo=repo), n, settings, [events.append])
    out.cleanup()
    return out, events, repo


async def test_candidates_queue_when_their_sandboxes_do_not_fit(tmp_path: Path) -> None:
    minimal, large = candidate_scripts()[2], candidate_scripts()[1]
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, [large, minimal])
        huge = {"memory_mb": 10**8}  # one sandbox would take 100 TB: only one at a time
        out, events, repo = await heavy(tmp_path, srv, 2, sandbox_limits=huge)
    started = of(events, "heavy_started")[0]
    assert started["at_once"] == 1 and "the rest queue" in started["admission"]
    assert any(d["phase"] == "queued" for d in of(events, "status"))
    order = [(e.type, e.run_id) for e in events if e.type in ("run_started", "run_finished")]
    c1, c2 = (c.run_id for c in out.candidates)
    assert order.index(("run_finished", c1)) < order.index(("run_started", c2))
    assert out.winner is not None and out.winner.label == "c2"
    nothing_left(tmp_path, repo)


async def test_one_budget_is_shared_by_every_candidate(tmp_path: Path) -> None:
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, candidate_scripts()[:3])
        out, events, repo = await heavy(tmp_path, srv, 3, max_steps=4)
    steps = [c.result.steps for c in out.candidates]
    assert sum(steps) == 4  # the pool's four steps, not four each
    assert "budget_exhausted" in {c.outcome for c in out.candidates}
    assert "heavy step budget used up" in json.dumps(of(events, "run_finished"))
    nothing_left(tmp_path, repo)


async def test_cancel_stops_every_candidate_and_removes_their_copies(tmp_path: Path) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    events: list[Event] = []
    with FakeK2Server(models=[MODEL]) as srv:
        stall = [Reply(reasoning="Thinking for a long time.", content="…", hold=True)]
        script_candidates(srv, [stall, stall, stall])
        settings = heavy_settings(srv, tmp_path, "bwrap")
        task = asyncio.create_task(
            run_heavy(RunRequest(task=TASK, repo=repo), 3, settings, [events.append])
        )
        for _ in range(600):  # every candidate has its run copy and a held model stream
            if len(srv.requests) >= 3 or task.done():
                break
            await asyncio.sleep(0.1)
        assert len(srv.requests) == 3
        task.cancel()
        out = await task
    assert out.outcome is Outcome.CANCELLED
    assert {c.outcome for c in out.candidates} == {"cancelled"}
    finished = {e.run_id for e in events if e.type == "run_finished"}
    assert finished == {out.run_id, *(c.run_id for c in out.candidates)}
    out.cleanup()
    nothing_left(tmp_path, repo)


def _twin_scripts() -> list[list[Reply]]:
    """Two passing candidates with diffs of the same size (the judge decides)."""
    other = "def add(a, b):\n    return b + a\n"
    return [
        [
            Reply(
                reasoning="fix",
                tool_calls=[("edit_file", {"path": "calc.py", "old_text": BUG, "new_text": fix})],
            ),
            Reply(reasoning="done", content="Fixed."),
        ]
        for fix in (FIX, other)
    ]


def _verdict(winner: str, reason: str) -> Reply:
    text = f'Comparing both.\n{{"winner": "{winner}", "reason": "{reason}"}}'
    return Reply(reasoning=f"JUDGE-THOUGHT {winner}: the rubric says so.", content=text)


@pytest.mark.parametrize(
    ("verdicts", "winner", "reported"),
    [
        (("B", "A"), "c2", ""),  # both orders prefer c2
        (("A", "A"), "c1", "position bias"),  # each order prefers whoever came first
        (("tie", "B"), "c1", "the other a tie"),  # split: c1 keeps it on its smaller index
    ],
)
async def test_the_judge_decides_between_equal_diffs(
    tmp_path: Path, verdicts: tuple[str, str], winner: str, reported: str
) -> None:
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, _twin_scripts())
        srv.routes.add(JUDGE_MARKER, *(_verdict(v, f"reason {i}") for i, v in enumerate(verdicts)))
        out, events, repo = await heavy(tmp_path, srv, 2)
        judge_requests = [r for r in srv.requests if JUDGE_MARKER in json.dumps(r)]
    assert out.winner is not None and out.winner.label == winner, out.summary
    sel = of(events, "heavy_selected")[0]
    assert sel["finalists"] == ["c1", "c2"] and sel["judge"]["winner"] == winner
    assert len(of(events, "judge_verdict")) == 2 and len(judge_requests) == 2
    assert "tools" not in judge_requests[0]
    notes = " ".join(sel["ties"] + sel["disagreements"])
    assert (reported in notes) if reported else not sel["disagreements"]
    assert "the judge preferred it" in sel["explanation"]
    assert "JUDGE-THOUGHT" in out.trajectory.read_text()  # its reasoning is kept
    nothing_left(tmp_path, repo)


async def test_write_tests_candidates_may_add_tests(tmp_path: Path) -> None:
    new_test = "from calc import sub\n\n\ndef test_sub_negative():\n    assert sub(1, 3) == -2\n"
    writes = [
        Reply(
            reasoning="Add a test.",
            tool_calls=[("create_file", {"path": "tests/test_more.py", "content": new_test})],
        ),
        Reply(reasoning="done", content="Added a test for sub."),
    ]
    words = [Reply(reasoning="hm", content="sub looks fine to me.")]
    repo = make_calc_repo(tmp_path / "repo")
    events: list[Event] = []
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, [words, writes])
        settings = heavy_settings(srv, tmp_path, "bwrap")
        request = RunRequest(task="write tests for sub", repo=repo, mode="write_tests")
        out = await run_heavy(request, 2, settings, [events.append])
    try:
        assert out.winner is not None and out.winner.label == "c2", out.summary
        assert out.winner.evidence is not None
        assert out.winner.evidence.touched_tests == ["tests/test_more.py"]
        assert "as the task allows" in out.summary
        assert "ended no_change" in of(events, "heavy_selected")[0]["excluded"]["c1"]
    finally:
        out.cleanup()
    nothing_left(tmp_path, repo)
