"""`k2lsp --task … --heavy N` as a subprocess against the fake K2 host (real git, bwrap)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_k2_env
from git_helpers import git
from heavy_helpers import (
    HOST_PYTEST,
    MODEL,
    TASK,
    candidate_scripts,
    make_calc_repo,
    script_candidates,
)

from k2lsp.fake.server import FakeK2Server

K2LSP = [sys.executable, "-m", "k2lsp"]


def env_for(tmp_path: Path, base_url: str) -> dict[str, str]:
    """Env pointing at the fake host, a private user config and state dir."""
    env = make_k2_env(base_url)
    config = tmp_path / "config" / "k2lsp" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'test_command = {json.dumps(HOST_PYTEST)}\nallow_commands = ["sed -i *"]\n')
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        K2LSP_STATE_DIR=str(tmp_path / "state"),
    )
    env.pop("CI", None)
    return env


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    from k2lsp.sandbox import bwrap

    why = bwrap.problem()
    if why:
        pytest.skip(f"bwrap unavailable: {why}")


def run_cli(
    tmp_path: Path, repo: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], FakeK2Server]:
    """One heavy ×4 CLI run against four scripted candidates."""
    with FakeK2Server(models=[MODEL], prefix_cache="shared") as srv:
        script_candidates(srv, candidate_scripts())
        proc = subprocess.run(
            [
                *K2LSP,
                "--task",
                TASK,
                "--repo",
                str(repo),
                "--heavy",
                "4",
                "--sandbox",
                "bwrap",
                *extra,
            ],
            env=env_for(tmp_path, srv.base_url),
            capture_output=True,
            text=True,
            timeout=600,
        )
    return proc, srv


def test_output_branch_makes_one_branch_per_candidate_and_the_winner(tmp_path: Path) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    proc, _srv = run_cli(tmp_path, repo, "--json", "--output", "branch")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    heavy_id = events[0]["run_id"]
    assert events[-1]["type"] == "run_finished" and events[-1]["run_id"] == heavy_id
    sel = next(e for e in events if e["type"] == "heavy_selected")
    assert sel["winner"] == "c3"
    assert {r["candidate"]: r["outcome"] for r in sel["candidates"]}.keys() == {
        "c1",
        "c2",
        "c3",
        "c4",
    }
    assert all(r["evidence"] is not None for r in sel["candidates"])
    branches = set(git(repo, "branch", "--list", "k2lsp/*", "--format=%(refname:short)").split())
    assert branches == {f"k2lsp/{heavy_id}", *(f"k2lsp/{heavy_id}-c{i}" for i in range(1, 5))}
    assert git(repo, "rev-parse", f"k2lsp/{heavy_id}") == git(
        repo, "rev-parse", f"k2lsp/{heavy_id}-c3"
    )
    assert "return a + b" in git(repo, "show", f"k2lsp/{heavy_id}:calc.py")
    assert git(repo, "status", "--porcelain").strip() == ""  # the user's tree is untouched
    assert not list((tmp_path / "state" / "runs").iterdir())


def test_output_apply_writes_the_winner_and_leaves_nothing(tmp_path: Path) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    proc, _srv = run_cli(tmp_path, repo, "--output", "apply")
    assert proc.returncode == 0, proc.stderr
    assert "c3 wins" in proc.stdout and "larger diff" in proc.stdout  # the others are shown
    text = (repo / "calc.py").read_text()
    assert "return a + b" in text and "TypeError" not in text
    assert "== 5" in (repo / "tests" / "test_calc.py").read_text()
    assert git(repo, "branch", "--list", "k2lsp/*").strip() == ""
    assert not list((tmp_path / "state" / "runs").iterdir())


def test_output_patch_under_json_is_saved_privately_by_the_patchfile_rule(
    tmp_path: Path,
) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    proc, _srv = run_cli(tmp_path, repo, "--json", "--output", "patch")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout: events only
    patch = tmp_path / "state" / "patches" / f"{events[0]['run_id']}.patch"
    assert "+    return a + b" in patch.read_text()
    assert patch.stat().st_mode & 0o777 == 0o600 and patch.parent.stat().st_mode & 0o777 == 0o700
    assert git(repo, "status", "--porcelain").strip() == ""  # the user's tree is untouched


def test_heavy_rejects_a_bad_count(tmp_path: Path) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    proc = subprocess.run(
        [*K2LSP, "--task", TASK, "--repo", str(repo), "--heavy", "0"],
        env=env_for(tmp_path, "http://127.0.0.1:9/v1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--heavy takes 1 to 16" in proc.stderr
