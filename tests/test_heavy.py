"""Heavy mode end to end: four scripted candidates (the real openai SDK against the fake K2
host), real git repositories, real sandboxes (bwrap and docker); the minimal passing one wins,
the others stay visible with their failures, and nothing is left behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from git_helpers import git
from heavy_helpers import (
    MODEL,
    TASK,
    candidate_scripts,
    heavy_settings,
    make_calc_repo,
    script_candidates,
)

from k2lsp.agent.events import Event
from k2lsp.agent.heavy.diversity import PLAN_HEADER
from k2lsp.agent.heavy.scheduler import run_heavy
from k2lsp.agent.session import RunRequest
from k2lsp.errors import Outcome
from k2lsp.fake.server import FakeK2Server


def of(events: list[Event], type_: str) -> list[dict[str, Any]]:
    """The data of every event of `type_`."""
    return [e.data for e in events if e.type == type_]


def leftover_containers(tmp_path: Path) -> list[str]:
    """Sandbox containers (any state) whose run copy lies under `tmp_path`."""
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=org.k2lsp.sandbox",
            "--format",
            '{{.ID}} {{.Label "org.k2lsp.root"}}',
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line for line in out.splitlines() if str(tmp_path) in line]


def sandbox_or_skip(kind: str) -> None:
    """Skip when the backend cannot run here (saying why)."""
    if kind == "bwrap":
        from k2lsp.sandbox import bwrap

        why = bwrap.problem()
    else:
        from k2lsp.sandbox import docker

        why = docker.problem("k2lsp-sandbox:latest")
    if why:
        pytest.skip(f"{kind} unavailable: {why}")


@pytest.mark.parametrize("kind", ["bwrap", "docker"])
async def test_heavy_picks_the_minimal_passing_candidate(tmp_path: Path, kind: str) -> None:
    sandbox_or_skip(kind)
    repo = make_calc_repo(tmp_path / "repo")
    events: list[Event] = []
    with FakeK2Server(models=[MODEL], prefix_cache="shared") as srv:
        script_candidates(srv, candidate_scripts())
        settings = heavy_settings(srv, tmp_path, kind)
        out = await run_heavy(RunRequest(task=TASK, repo=repo), 4, settings, [events.append])
        requests = list(srv.requests)
    try:
        assert out.outcome is Outcome.SUCCESS, out.summary
        assert out.winner is not None and out.winner.label == "c3"
        assert out.winner.result.changes.paths() == ["calc.py"]
        assert "return a + b" in out.winner.diff
        sel = of(events, "heavy_selected")[0]
        assert sel["winner"] == "c3" and sel["finalists"] == ["c3"]
        assert "red -> green" in sel["explanation"] and "tests/test_calc.py::test_add" in str(sel)
        excluded = sel["excluded"]
        assert "full suite fails" in excluded["c1"] and "test_sub" in excluded["c1"]
        assert "larger diff" in excluded["c2"]
        assert "changed test files" in excluded["c4"] and "test_calc.py" in excluded["c4"]
        records = {r["candidate"]: r for r in sel["candidates"]}
        assert records["c1"]["evidence"]["suite_ok"] is False
        assert records["c1"]["evidence"]["failures"][0]["test_id"].endswith("test_sub")
        assert records["c2"]["evidence"]["suite_ok"] is True
        assert records["c2"]["evidence"]["diff_lines"] > 5 * records["c3"]["evidence"]["diff_lines"]
        assert records["c4"]["evidence"]["touched_tests"] == ["tests/test_calc.py"]
        assert len(of(events, "candidate_finished")) == 4
        # every candidate's own run is in the stream under its own run id
        started = {e.run_id for e in events if e.type == "run_started"}
        assert started == {out.run_id, *(c.run_id for c in out.candidates)}
        # identical prefix up to the opening plan: the first request of every candidate
        firsts = [r for r in requests if len(r["messages"]) == 2 and PLAN_HEADER in str(r)]
        assert len(firsts) == 4
        heads = {
            json.dumps(r["messages"])[: json.dumps(r["messages"]).index(PLAN_HEADER)]
            for r in firsts
        }
        assert len(heads) == 1
        hs = of(events, "heavy_started")[0]
        assert 0 < hs["prefix_chars"] < hs["first_request_chars"]
        assert sel["cache_ratio"] > 0.5  # the shared prefix cache served the N streams
    finally:
        out.cleanup()
    assert not list((tmp_path / "state" / "runs").iterdir())
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""
    assert git(repo, "status", "--porcelain").strip() == ""
    if kind == "docker":
        assert leftover_containers(tmp_path) == []


async def test_cancel_removes_running_containers_and_copies(tmp_path: Path) -> None:
    import asyncio

    from k2lsp.fake.script import Reply

    sandbox_or_skip("docker")
    repo = make_calc_repo(tmp_path / "repo")
    sleeper = [Reply(reasoning="wait", tool_calls=[("run_command", {"command": "sleep 300"})])]
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, [sleeper, sleeper])
        settings = heavy_settings(srv, tmp_path, "docker", allow_commands=["sleep *"])
        task = asyncio.create_task(run_heavy(RunRequest(task=TASK, repo=repo), 2, settings))
        for _ in range(1200):  # both candidates are inside `sleep 300` containers
            if (len(srv.requests) >= 2 and len(leftover_containers(tmp_path)) >= 2) or task.done():
                break
            await asyncio.sleep(0.1)
        assert len(leftover_containers(tmp_path)) >= 2
        task.cancel()
        out = await task
    assert out.outcome is Outcome.CANCELLED
    assert leftover_containers(tmp_path) == []  # gone when the heavy run returns
    out.cleanup()
    left = [
        (p.name, sorted(x.name for x in p.iterdir()))
        for p in (tmp_path / "state" / "runs").iterdir()
    ]
    assert not left
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""
