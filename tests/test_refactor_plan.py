"""The refactor job's plan can be reviewed and edited (`--plan-only`, then `--plan FILE`), a
cancelled job says how to resume, and bad job ids get a clear error."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from conftest import TEST_KEY
from refactor_helpers import RenameJob

from k2lsp.agent.events import Event
from k2lsp.agent.refactor.job import JobOptions
from k2lsp.agent.refactor.runner import run_job
from k2lsp.config.settings import load_settings
from k2lsp.errors import Outcome, UsageError
from k2lsp.fake.server import FakeK2Server

JOB = RenameJob(
    path="lib/core.py",
    old="area",
    new="surface",
    extra="unit='m'",
    def_old="def surface(w, h):",
    def_new="def surface(w, h, unit='m'):",
    batch_files=2,
)
FILES = {
    "lib/__init__.py": "",
    "lib/core.py": "def area(w, h):\n    return w * h\n",
    **{f"lib/use{i}.py": f"from lib.core import area\n\nX{i} = area({i}, 2)\n" for i in range(5)},
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    env = {"PATH": "/usr/bin:/bin", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)
    return root


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeK2Server:
    srv = FakeK2Server()
    srv.responder = JOB.policy
    srv.start()
    monkeypatch.setenv("K2LSP_BASE_URL", srv.base_url)
    monkeypatch.setenv("K2LSP_API_KEY", TEST_KEY)
    monkeypatch.setenv("K2LSP_MODEL", "kimi-k2-thinking")
    monkeypatch.setenv("K2LSP_PROVIDER", "openai-compatible")
    monkeypatch.setenv("K2LSP_SANDBOX", "none")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield srv
    srv.stop()


def run(opts: JobOptions, repo: Path, events: list[Event] | None = None):  # type: ignore[no-untyped-def]
    settings = load_settings(repo)
    sink = events.append if events is not None else lambda e: None
    return asyncio.run(run_job(opts, settings, [sink]))


def test_plan_only_then_an_edited_plan_runs_without_planning_again(
    server: FakeK2Server, repo: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    first = run(JobOptions(task=JOB.task, repo=repo, plan_only=plan_file), repo)
    assert first.outcome is Outcome.SUCCESS and plan_file.is_file()
    plan = json.loads(plan_file.read_text())
    assert len(plan["sites"]) == 11 and len(plan["batches"]) == 3
    assert plan["batches"][-1][-1] == "lib/core.py"  # the definition goes last
    status = ["git", "-C", str(repo), "status", "--porcelain"]
    assert subprocess.run(status, capture_output=True, text=True).stdout == ""  # untouched
    requests = len(server.requests)
    from k2lsp.runs.gc import stale_runs

    assert stale_runs(tmp_path / "state" / "k2lsp") == []  # gc keeps a stopped job's run copy

    plan["batch_files"] = 6  # the user's edit: bigger batches
    plan_file.write_text(json.dumps(plan))
    events: list[Event] = []
    second = run(JobOptions(repo=repo, plan_file=plan_file, task="from the plan"), repo, events)
    assert second.outcome is Outcome.SUCCESS, second.summary
    assert second.left == []
    progress = [e.data for e in events if e.type == "job_progress"]
    assert progress[0]["phase"] == "planned" and progress[0]["batches"] == 1
    assert {p["phase"] for p in progress} >= {"batch", "tests", "check", "done"}
    assert all(
        "Plan it" not in (r["messages"][1].get("content") or "") for r in server.requests[requests:]
    )  # no planning conversation for a given plan
    show = subprocess.run(
        ["git", "-C", str(repo), "show", f"{second.branch}:lib/use3.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "from lib.core import surface" in show and "surface(3, 2, unit='m')" in show


def test_resume_errors_name_the_known_jobs(server: FakeK2Server, repo: Path) -> None:
    with pytest.raises(UsageError, match="known jobs: none"):
        run(JobOptions(repo=repo, resume="nope"), repo)
    done = run(JobOptions(task=JOB.task, repo=repo), repo)
    assert done.outcome is Outcome.SUCCESS, done.summary
    with pytest.raises(UsageError, match="already done"):
        run(JobOptions(repo=repo, resume=done.job_id), repo)


def test_an_edited_plan_that_is_not_valid_is_refused(
    server: FakeK2Server, repo: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"summary": "x", "searches": [{"symbol": "area"}]}))
    result = run(JobOptions(repo=repo, plan_file=bad, task="x"), repo)
    assert result.outcome is Outcome.USAGE_ERROR and "bad.json" in result.summary


def test_a_folder_that_is_not_a_git_repository_gets_a_patch(
    server: FakeK2Server, tmp_path: Path
) -> None:
    folder = tmp_path / "plain"
    for rel, text in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    result = run(JobOptions(task=JOB.task, repo=folder), folder)
    assert result.outcome is Outcome.SUCCESS and not result.branch, result.summary
    patch = Path(result.summary.split(" in ", 1)[1].split(" (apply", 1)[0])
    assert patch.is_file() and "+from lib.core import surface" in patch.read_text()
    assert (folder / "lib/use1.py").read_text() == FILES["lib/use1.py"]  # untouched
    check = subprocess.run(["git", "apply", "--check", str(patch)], cwd=folder, capture_output=True)
    assert check.returncode == 0, check.stderr
