"""A refactor job stops cleanly and resumes: Ctrl-C (SIGINT) saves it as cancelled; the job's
step budget spans all its conversations (exit 4, resumable with a bigger budget)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_k2_env
from refactor_helpers import RenameJob
from test_refactor_plan import FILES, JOB

from k2lsp.fake.server import FakeK2Server

ROOT = Path(__file__).resolve().parents[1]
assert isinstance(JOB, RenameJob)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        git = ["git", "-C", str(root), "-c", "user.name=u", "-c", "user.email=u@x", *args]
        subprocess.run(git, check=True, capture_output=True)
    return root


def env_for(srv: FakeK2Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = make_k2_env(srv.base_url)
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), K2LSP_SANDBOX="none", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def refactor(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "k2lsp", "refactor", *args, "--repo", str(repo), "--json"]


def job_file(tmp_path: Path, job_id: str) -> dict[str, object]:
    path = tmp_path / "state" / "k2lsp" / "jobs" / job_id / "job.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_ctrl_c_saves_the_job_as_cancelled_and_resume_finishes_it(
    repo: Path, tmp_path: Path
) -> None:
    with FakeK2Server() as srv:
        srv.responder = JOB.policy
        env = env_for(srv, tmp_path)
        proc = subprocess.Popen(
            refactor(repo, JOB.task), env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        job_id = ""
        for line in proc.stdout:
            event = json.loads(line)
            job_id = event["run_id"]
            if event["type"] == "job_progress" and event["phase"] == "tests":
                proc.send_signal(signal.SIGINT)  # during batch 1's tests
                break
        rest = proc.communicate(timeout=120)[0]
        assert proc.returncode == 130
        finished = [json.loads(x) for x in rest.splitlines() if '"run_finished"' in x]
        assert finished and f"--resume {job_id}" in finished[-1]["summary"]
        assert job_file(tmp_path, job_id)["status"] == "cancelled"
        done = subprocess.run(refactor(repo, "--resume", job_id), env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert job_file(tmp_path, job_id)["status"] == "done"
    assert "sites left: 0" in done.stderr


def test_the_step_budget_spans_the_whole_job(repo: Path, tmp_path: Path) -> None:
    with FakeK2Server() as srv:
        srv.responder = JOB.policy
        tight = env_for(srv, tmp_path, K2LSP_MAX_STEPS="7")
        small = subprocess.run(refactor(repo, JOB.task), env=tight, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert small.returncode == 4, small.stderr[-2000:]  # budget_exhausted
        job_id = json.loads(small.stdout.splitlines()[0])["run_id"]
        state = job_file(tmp_path, job_id)
        assert state["status"] == "failed" and state["steps"] == 7  # planning 3 + batch 1's 4
        bigger = env_for(srv, tmp_path, K2LSP_MAX_STEPS="40")
        done = subprocess.run(refactor(repo, "--resume", job_id), env=bigger, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    final = job_file(tmp_path, job_id)
    assert final["status"] == "done" and 7 < int(final["steps"]) <= 40  # type: ignore[call-overload]
