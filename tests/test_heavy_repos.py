"""Heavy mode on real corpus packages (seeded bug, the project's own environment, detected
test command, bwrap): the baseline finds the failing tests, each candidate is verified with
the package's own suite, and the minimal fix wins over a larger one and a wrong one."""

from __future__ import annotations

from pathlib import Path

import pytest
from heavy_helpers import MODEL, heavy_settings, script_candidates
from test_repos_e2e import SEEDS, git, seeded_project

from k2lsp.agent.events import Event
from k2lsp.agent.heavy.scheduler import run_heavy
from k2lsp.agent.session import RunRequest
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server


def _scripts(name: str) -> list[list[Reply]]:
    rel, good, bad = SEEDS[name]
    pad = "".join(f"# note {i}: reviewed\n" for i in range(12))

    def run(*calls: tuple[str, dict[str, str]]) -> list[Reply]:
        steps = [Reply(reasoning="edit", tool_calls=[c]) for c in calls]
        return [*steps, Reply(reasoning="done", content="Done.")]

    fix = ("edit_file", {"path": rel, "old_text": bad, "new_text": good})
    wrong = ("edit_file", {"path": rel, "old_text": bad, "new_text": bad + "  # looked at"})
    big = ("insert_code", {"path": rel, "code": pad})
    return [run(wrong), run(fix, big), run(fix)]


@pytest.mark.parametrize("name", ["cachetools", "inflection"])
async def test_heavy_on_a_real_package_picks_the_minimal_fix(tmp_path: Path, name: str) -> None:
    from k2lsp.sandbox import bwrap

    if bwrap.problem():
        pytest.skip(f"bwrap unavailable: {bwrap.problem()}")
    folder, _dirty = seeded_project(name, tmp_path)
    events: list[Event] = []
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, _scripts(name))
        settings = heavy_settings(srv, tmp_path, "bwrap", test_command=None)
        request = RunRequest(task="the tests fail since the last commit; fix it", repo=folder)
        out = await run_heavy(request, 3, settings, [events.append])
    try:
        assert out.winner is not None and out.winner.label == "c3", out.summary
        ev = out.winner.evidence
        assert ev is not None and ev.targets and ev.targets_green and ev.suite_ok
        excluded = next(e.data for e in events if e.type == "heavy_selected")["excluded"]
        assert "target tests still fail" in excluded["c1"]
        assert "larger diff" in excluded["c2"]
    finally:
        out.cleanup()
    assert not list((tmp_path / "state" / "runs").iterdir())
    assert git(folder, "branch", "--list", "k2lsp/*").strip() == ""
