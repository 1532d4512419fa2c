"""`k2lsp doctor` as a real subprocess against the real backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.sandbox import SandboxSettings
from tests.sandbox_helpers import open_sandbox


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "k2lsp", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=600,
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
    proc = doctor("--repo", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p: p.stat().st_mode for p in [tmp_path, *tmp_path.rglob("*")]} == modes  # untouched
    out = proc.stdout
    assert "[ok] docker: daemon answers" in out
    assert "[ok] docker image: user non-root" in out
    assert "[ok] bwrap:" in out and "[ok] sandbox auto: would use docker" in out
    assert "[ok] tests (docker): `python3 -m pytest -q` starts in the sandbox" in out


@pytest.mark.docker
@pytest.mark.bwrap
def test_doctor_explains_a_dependency_missing_in_the_sandbox(
    tmp_path: Path, backends: None
) -> None:
    (tmp_path / "test_a.py").write_text(
        "import pytest\nimport k2lsp_no_such_dependency\n\ndef test_a():\n    assert True\n"
    )
    proc = doctor("--repo", str(tmp_path))
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
def test_doctor_explains_an_unreadable_root_owned_repo(tmp_path: Path, backends: None) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs a root-owned repository")
    (tmp_path / "test_a.py").write_text("import pytest\n\ndef test_a():\n    assert True\n")
    tmp_path.chmod(0o700)
    proc = doctor("--repo", str(tmp_path))
    assert proc.returncode == 1
    assert "cannot read some files of this root-owned repository" in proc.stdout
