"""Heavy mode with the sandboxes on a remote Docker engine (a second dockerd on a loopback TCP
port, `DOCKER_HOST`) while the loop stays local; and a killed heavy run whose run copies,
branches and containers `k2lsp gc` removes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_k2_env
from docker_engine import containers, created_since, second_dockerd
from git_helpers import git
from heavy_helpers import (
    IMAGE_PYTEST,
    MODEL,
    TASK,
    candidate_scripts,
    heavy_settings,
    make_calc_repo,
    script_candidates,
)

from k2lsp.agent.events import Event
from k2lsp.agent.heavy.scheduler import run_heavy
from k2lsp.agent.session import RunRequest
from k2lsp.fake.script import Reply
from k2lsp.fake.server import FakeK2Server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """DOCKER_HOST of a private second dockerd with the sandbox image."""
    with second_dockerd() as host:
        yield host


@pytest.fixture
def remote(engine: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process talks to the second engine (fresh docker availability cache)."""
    from k2lsp.sandbox import docker as sandbox_docker

    monkeypatch.setenv("DOCKER_HOST", engine)
    sandbox_docker.problem.cache_clear()
    yield engine
    sandbox_docker.problem.cache_clear()


async def test_sandboxes_run_on_the_remote_engine(tmp_path: Path, remote: str) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    events: list[Event] = []
    since = time.time() - 1
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, [candidate_scripts()[1], candidate_scripts()[2]])
        settings = heavy_settings(srv, tmp_path, "docker")
        out = await run_heavy(RunRequest(task=TASK, repo=repo), 2, settings, [events.append])
    out.cleanup()
    assert out.winner is not None and out.winner.label == "c2", out.summary
    started = next(e.data for e in events if e.type == "heavy_started")
    assert f"docker engine at {remote}" in started["admission"]
    # baseline, each candidate's own run_tests, each verification: all on the second engine
    assert len(created_since(remote, since)) >= 5
    assert containers(remote) == []
    assert not list((tmp_path / "state" / "runs").iterdir())
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""


def test_a_killed_heavy_run_leaves_nothing_after_gc(tmp_path: Path, engine: str) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    config = tmp_path / "config" / "k2lsp" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'test_command = {json.dumps(IMAGE_PYTEST)}\nallow_commands = ["sleep *"]\n')
    sleeper = [Reply(reasoning="wait", tool_calls=[("run_command", {"command": "sleep 300"})])]
    with FakeK2Server(models=[MODEL]) as srv:
        script_candidates(srv, [sleeper, sleeper])
        env = make_k2_env(srv.base_url)
        env.update(
            DOCKER_HOST=engine,
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            K2LSP_STATE_DIR=str(tmp_path / "state"),
        )
        argv = [sys.executable, "-m", "k2lsp", "--task", TASK, "--repo", str(repo)]
        proc = subprocess.Popen(
            [*argv, "--heavy", "2", "--sandbox", "docker", "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(1200):  # both candidates are inside `sleep 300` containers
                if len(containers(engine)) >= 2 or proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert len(containers(engine)) >= 2
            assert git(repo, "branch", "--list", "k2lsp/*").strip() != ""
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # a crash: no cleanup code runs
            proc.wait()
    assert list((tmp_path / "state" / "runs").iterdir())  # left behind by the crash
    gc = subprocess.run(
        [sys.executable, "-m", "k2lsp", "gc"], env=env, capture_output=True, text=True, timeout=300
    )
    assert gc.returncode == 0, gc.stderr
    assert "removed container" in gc.stdout
    assert containers(engine) == []
    assert not list((tmp_path / "state" / "runs").iterdir())
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""


@pytest.mark.parametrize("how", ["current", "env"])
def test_a_docker_context_names_the_engine(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    from k2lsp.sandbox import docker as sandbox_docker
    from k2lsp.sandbox.base import SandboxSettings
    from k2lsp.sandbox.reap import docker_endpoint

    config = tmp_path / "docker-config"  # a private docker CLI config: the user's is untouched
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(config)
    docker_cli = ["docker", "context"]
    subprocess.run(
        [*docker_cli, "create", "k2test", "--docker", f"host={engine}"], env=env, check=True
    )
    if how == "current":
        subprocess.run([*docker_cli, "use", "k2test"], env=env, check=True, capture_output=True)
    else:
        monkeypatch.setenv("DOCKER_CONTEXT", "k2test")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    assert docker_endpoint() == engine
    since = time.time() - 1
    root = tmp_path / "work"
    root.mkdir()
    sandbox_docker.problem.cache_clear()
    sandbox = sandbox_docker.DockerSandbox.create(root, SandboxSettings())
    try:
        result = sandbox.run("echo on-the-context-engine", timeout_s=120)
    finally:
        sandbox.close()
        sandbox_docker.problem.cache_clear()
    assert result.exit_code == 0
    assert created_since(engine, since)  # the container ran on the context's engine
