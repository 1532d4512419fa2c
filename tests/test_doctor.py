"""`k2lsp doctor` as a real subprocess against the real backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.sandbox.base import SandboxSettings
from tests.sandbox_helpers import open_sandbox


def doctor(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`k2lsp doctor ARGS`; `state`: a state folder the docker user can read (the run copy lives
    there; a root-only one is the docker backend's own problem, see test_sandbox_backends)."""
    import os

    env = dict(os.environ)
    if state is not None:
        state.mkdir(mode=0o755, exist_ok=True)
        env["XDG_STATE_HOME"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "k2lsp", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture
def backends(tmp_path: Path) -> None:
    """Skip unless both real backends work here (CI has both); the repo readable like a clone."""
    tmp_path.chmod(0o755)
    open_sandbox("bwrap", tmp_path, SandboxSettings()).close()
    open_sandbox("docker", tmp_path, SandboxSettings()).close()


@pytest.mark.docker
@pytest.mark.bwrap
def test_doctor_passes_on_a_healthy_project(tmp_path: Path, backends: None) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text(
        "import pytest\n\ndef test_a():\n    assert True\n"
    )
    modes = {p: p.stat().st_mode for p in [tmp_path, *tmp_path.rglob("*")]}
    proc = doctor("--repo", str(tmp_path), state=tmp_path.parent / "st")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p: p.stat().st_mode for p in [tmp_path, *tmp_path.rglob("*")]} == modes  # untouched
    out = proc.stdout
    assert "[ok] docker: daemon answers" in out
    assert "[ok] docker image: user non-root" in out
    assert "[ok] bwrap:" in out and "[ok] sandbox auto: would use bwrap" in out
    # bwrap when the host's python3 has pytest, else docker (whose image has it)
    assert "[ok] tests (" in out and "`python3 -m pytest -q` in a run copy" in out
    assert "1 collected, 1 passed" in out
    docker = doctor("--repo", str(tmp_path), "--sandbox", "docker", state=tmp_path.parent / "st")
    assert "[ok] sandbox docker: would use docker" in docker.stdout
    assert "[ok] tests (docker): `python3 -m pytest -q` in a run copy" in docker.stdout


@pytest.mark.bwrap
def test_doctor_honours_k2lsp_sandbox_and_reports_the_first_error(tmp_path: Path) -> None:
    import os

    open_sandbox("bwrap", tmp_path, SandboxSettings()).close()
    (tmp_path / "test_a.py").write_text(  # unittest: any host python3 can run it
        "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n"
        "        self.assertEqual(1, 2, 'one is not two')\n"
    )
    env = {**os.environ, "K2LSP_SANDBOX": "bwrap"}
    proc = subprocess.run(
        [sys.executable, "-m", "k2lsp", "doctor", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert "[ok] sandbox bwrap: would use bwrap" in proc.stdout
    assert "[warn] tests (bwrap)" in proc.stdout and "1 collected" in proc.stdout
    assert "first error: test_a.T.test_a: AssertionError: 1 != 2 : one is not two" in proc.stdout


@pytest.mark.docker
@pytest.mark.bwrap
def test_doctor_explains_a_dependency_missing_in_the_sandbox(
    tmp_path: Path, backends: None
) -> None:
    (tmp_path / "test_a.py").write_text(
        "import pytest\nimport k2lsp_no_such_dependency\n\ndef test_a():\n    assert True\n"
    )
    proc = doctor("--repo", str(tmp_path), "--sandbox", "docker", state=tmp_path.parent / "st")
    assert proc.returncode == 1
    assert "[FAIL] tests (docker)" in proc.stdout
    assert (
        "module 'k2lsp_no_such_dependency' is not importable in the docker sandbox" in proc.stdout
    )
    assert "sandbox/Dockerfile" in proc.stdout


@pytest.mark.docker
def test_doctor_names_the_missing_image(tmp_path: Path, backends: None) -> None:
    proc = doctor("--repo", str(tmp_path), "--image", "k2lsp-sandbox:no-such-tag", "--skip-tests")
    assert proc.returncode == 1
    assert "[FAIL] docker: image 'k2lsp-sandbox:no-such-tag' is missing" in proc.stdout
    assert "fix: run `k2lsp sandbox build`" in proc.stdout
    assert "would use bwrap" in proc.stdout


def test_doctor_rejects_a_missing_folder(tmp_path: Path) -> None:
    proc = doctor("--repo", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "is not a folder" in proc.stdout


@pytest.mark.docker
@pytest.mark.bwrap
def test_doctor_runs_a_private_root_owned_repo_in_a_run_copy(
    tmp_path: Path, backends: None
) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs a root-owned repository")
    (tmp_path / "test_a.py").write_text(
        "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n"
    )
    tmp_path.chmod(0o700)
    proc = doctor("--repo", str(tmp_path))
    assert "[ok] tests (bwrap)" in proc.stdout and "1 collected" in proc.stdout
    assert "run copy (/root/" in proc.stdout  # the state folder a run uses, not the user's tree
