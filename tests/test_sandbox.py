"""Sandbox selection, settings/profiles, output capping, the `none` backend, docker file
ownership and the cached image build."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from k2lsp.errors import SandboxUnavailable, UsageError
from k2lsp.sandbox import bwrap as sandbox_bwrap
from k2lsp.sandbox import docker as sandbox_docker
from k2lsp.sandbox.base import NONE_WARNING, OutputCap, SandboxSettings, cap_bytes, get_sandbox
from k2lsp.sandbox.profile import read_profile, settings_for
from tests.sandbox_helpers import open_sandbox

REPO = Path(__file__).resolve().parent.parent


def test_output_cap_keeps_head_and_tail_of_any_stream() -> None:
    acc = OutputCap(100)
    for i in range(1000):
        acc.feed(f"{i:04d}\n".encode())
    text, truncated = acc.text()
    assert truncated and text.startswith("0000\n") and text.endswith("0999\n")
    assert "bytes of output omitted" in text
    assert cap_bytes(b"short", 100) == ("short", False)
    assert cap_bytes("é".encode() * 10, 7)[0]  # cut inside a character: still decodes


def test_default_profile_loads_and_bad_profiles_are_explained(tmp_path: Path) -> None:
    from k2lsp.config.settings import Settings

    default = REPO / "sandbox/profiles/default.toml"
    settings = settings_for(Settings(sandbox_profile=default, sandbox_limits={"memory_mb": 300}))
    assert settings.memory_mb == 300 and settings.pids == 512 and settings.network is False
    assert read_profile(REPO / "sandbox/profiles/tight.toml")["pids"] == 128
    cases = {
        "[sandbox]\nmemroy_mb = 5\n": "memroy_mb: unknown key (did you mean 'memory_mb'?)",
        "[sandbox\n": "cannot read sandbox profile",
        "sandbox = 'docker'\n": "[sandbox] must be a table of limits",
        "[sandbox]\nkind = 'docker'\n": "kind: not a limit; set `sandbox` in k2lsp.toml",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.toml"
        bad.write_text(text)
        with pytest.raises(UsageError) as caught:
            read_profile(bad)
        assert message in str(caught.value) and str(bad) in str(caught.value)


@pytest.mark.parametrize(
    ("limit", "value", "problem"),
    [
        ("memory_mb", -5, "memory_mb: must be >= 16 (got -5)"),
        ("pids", "many", "pids: must be a whole number (got 'many')"),
        ("network", 1, "network: must be true or false (got 1)"),
    ],
)
def test_a_bad_limit_reads_the_same_in_a_profile_and_in_the_settings(
    tmp_path: Path, limit: str, value: object, problem: str
) -> None:
    """`sandbox_limits` in k2lsp.toml and a profile file go through one validator."""
    from k2lsp.config.settings import load_settings

    shown = json.dumps(value)
    profile = tmp_path / "p.toml"
    profile.write_text(f"[sandbox]\n{limit} = {shown}\n")
    with pytest.raises(UsageError) as in_profile:
        read_profile(profile)
    assert str(in_profile.value) == f"sandbox profile {profile}: {problem}"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "k2lsp.toml").write_text(f"[sandbox_limits]\n{limit} = {shown}\n")
    with pytest.raises(UsageError) as in_settings:
        load_settings(repo, trusted=True)
    assert f"sandbox_limits.{problem}" in str(in_settings.value)


def test_settings_for_reads_kind_image_profile_and_limits() -> None:
    from k2lsp.config.settings import Settings

    plain = settings_for(Settings(sandbox="bwrap", sandbox_image="img:1"))
    assert (plain.kind, plain.image, plain.memory_mb) == ("bwrap", "img:1", 2048)
    profiled = settings_for(
        Settings(
            sandbox_profile=REPO / "sandbox/profiles/tight.toml",
            sandbox_limits={"pids": 99},
        )
    )
    assert (profiled.memory_mb, profiled.pids, profiled.kind) == (512, 99, "auto")
    # An unknown limit is refused by the settings model (every layer), and still by
    # settings_for for settings whose limits were assigned afterwards.
    with pytest.raises(ValidationError, match="ram"):
        Settings(sandbox_limits={"ram": 1})
    odd = Settings()
    odd.sandbox_limits = {"ram": 1}
    with pytest.raises(UsageError, match="setting sandbox_limits: ram: unknown key"):
        settings_for(odd)


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="choose one of auto, docker, bwrap, none"):
        get_sandbox("firejail", tmp_path)


def test_none_backend_is_explicit_and_warns_every_time(tmp_path: Path) -> None:
    with get_sandbox("none", tmp_path) as sb:
        res = sb.run("echo plain; exit 3", timeout_s=30)
        assert res.exit_code == 3 and res.output == "plain\n"
        assert res.warning == NONE_WARNING and res.backend == "none"
        slow = sb.run("sleep 60", timeout_s=1)
        assert slow.timed_out and slow.exit_code == 124 and slow.warning == NONE_WARNING
        with pytest.raises(UsageError, match="outside the run copy"):
            sb.run("true", cwd=Path("/etc"))


def test_auto_refuses_when_no_backend_is_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap on PATH
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")  # no daemon there
    sandbox_bwrap.problem.cache_clear()
    sandbox_docker.problem.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable) as info:
            get_sandbox("auto", tmp_path)
    finally:
        sandbox_bwrap.problem.cache_clear()
        sandbox_docker.problem.cache_clear()
    message = str(info.value)
    assert "no sandbox backend is available" in message
    assert "apt-get install bubblewrap" in message and "k2lsp sandbox build" in message
    assert "--sandbox none" in message and "no docker daemon answers" in message
    assert info.value.outcome.exit_code == 6


@pytest.mark.docker
def test_missing_image_names_the_build_command(tmp_path: Path) -> None:
    if sandbox_docker.problem("k2lsp-sandbox:latest") and "missing" not in str(
        sandbox_docker.problem("k2lsp-sandbox:latest")
    ):
        pytest.skip(f"docker unavailable: {sandbox_docker.problem('k2lsp-sandbox:latest')}")
    with pytest.raises(SandboxUnavailable, match="k2lsp sandbox build"):
        get_sandbox("docker", tmp_path, SandboxSettings(image="k2lsp-sandbox:no-such-tag"))


@pytest.mark.docker
@pytest.mark.bwrap
def test_auto_prefers_docker_then_bwrap(tmp_path: Path) -> None:
    open_sandbox("docker", tmp_path, SandboxSettings()).close()  # skips when docker is unavailable
    with get_sandbox("auto", tmp_path) as sb:
        assert sb.name == "docker"
    with get_sandbox("auto", tmp_path, SandboxSettings(image="k2lsp-sandbox:no-such-tag")) as sb:
        assert sb.name == "bwrap"


@pytest.mark.docker
def test_docker_runs_as_the_sandbox_user_and_files_keep_the_run_copys_owner(
    tmp_path: Path,
) -> None:
    from k2lsp.sandbox.owner import sandbox_ids

    root = tmp_path / "owned"
    root.mkdir()
    if os.geteuid() == 0:
        os.chown(root, 4321, 4321)
    expected = root.stat().st_uid
    with open_sandbox("docker", root, SandboxSettings()) as sb:
        res = sb.run("id -u; echo x > new.txt", timeout_s=60)
    assert res.exit_code == 0, res.output
    assert res.output.split()[0] == str(sandbox_ids()[0]) != "0"
    assert (root / "new.txt").stat().st_uid == expected


@pytest.mark.docker
def test_docker_user_is_never_root_and_can_write_a_root_owned_run_copy(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a root-owned run copy (CI runs as root)")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "old.txt").write_text("old")
    os.chmod(tmp_path / "sub" / "old.txt", 0o644)
    with open_sandbox("docker", tmp_path, SandboxSettings()) as sb:
        res = sb.run(
            "id -u; echo new >> sub/old.txt; echo y > sub/made.txt; touch /x 2>&1", timeout_s=60
        )
    assert res.output.splitlines()[0] != "0"
    assert (tmp_path / "sub" / "old.txt").read_text() == "oldnew\n"
    assert (tmp_path / "sub" / "made.txt").stat().st_uid == 0  # handed back to the owner
    assert oct((tmp_path / "sub" / "old.txt").stat().st_mode & 0o7777) == "0o644"
    assert "Read-only file system" in res.output or "Permission denied" in res.output


def _k2lsp_containers() -> list[str]:
    proc = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=org.k2lsp.pid={os.getpid()}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split()


@pytest.mark.docker
def test_each_command_gets_its_own_container_removed_before_run_returns(tmp_path: Path) -> None:
    sb = open_sandbox("docker", tmp_path, SandboxSettings())
    with sb:
        first = sb.run("hostname; cat /proc/1/stat | cut -d' ' -f22", timeout_s=60)
        assert _k2lsp_containers() == []
        second = sb.run("hostname; cat /proc/1/stat | cut -d' ' -f22", timeout_s=60)
        assert _k2lsp_containers() == []
    assert first.exit_code == second.exit_code == 0
    assert first.output.split()[0] != second.output.split()[0]  # two containers


@pytest.mark.docker
def test_image_build_is_a_fast_no_op_when_its_definition_is_unchanged() -> None:
    open_sandbox("docker", REPO, SandboxSettings()).close()  # builds once, or skips
    from k2lsp.sandbox.image import cli, ensure_image

    start = time.monotonic()
    message = ensure_image()
    assert "up to date" in message
    assert time.monotonic() - start < 60
    assert cli(["build"]) == 0
    labels = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            "k2lsp-sandbox:latest",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "org.k2lsp.definition" in labels.stdout


def test_sandbox_build_cli_rejects_unknown_actions(capsys: pytest.CaptureFixture[str]) -> None:
    from k2lsp.sandbox.image import cli

    assert cli([]) == 2
    with pytest.raises(SystemExit):
        cli(["build", "--mode", "cloud"])


@pytest.mark.docker
def test_closing_the_sandbox_mid_command_removes_its_container(tmp_path: Path) -> None:
    import threading

    sb = open_sandbox("docker", tmp_path, SandboxSettings())
    results = []
    worker = threading.Thread(
        target=lambda: results.append(sb.run("sleep 600", timeout_s=600)), daemon=True
    )
    worker.start()
    for _ in range(600):
        if _k2lsp_containers():
            break
        time.sleep(0.1)
    assert _k2lsp_containers()
    sb.close()  # what a cancelled run does
    worker.join(60)
    assert not worker.is_alive()
    assert results and results[0].exit_code != 0
    assert _k2lsp_containers() == []


@pytest.mark.bwrap
@pytest.mark.parametrize("with_prlimit", [True, False])
def test_bwrap_sets_rlimits_with_or_without_prlimit(
    with_prlimit: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    settings = SandboxSettings(memory_mb=300, pids=77, file_size_mb=5)
    sb = open_sandbox("bwrap", tmp_path, settings)
    if not with_prlimit:  # only bwrap and the shell on PATH: limits come from a preexec_fn
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("bwrap", "sh", "cat", "grep"):
            found = shutil.which(name)
            assert found
            (bin_dir / name).symlink_to(found)
        monkeypatch.setenv("PATH", str(bin_dir))
    with sb:
        res = sb.run("cat /proc/self/limits", timeout_s=60)
    limits = {line[:26].strip(): line[26:].split()[0] for line in res.output.splitlines()[1:]}
    assert limits["Max data size"] == str(300 * 1024 * 1024)
    assert limits["Max file size"] == str(5 * 1024 * 1024)
    assert limits["Max core file size"] == "0"
    if os.geteuid() == 0:
        assert limits["Max processes"] == "77"
    else:  # RLIMIT_NPROC counts all of the user's processes: 77 more than exist
        assert int(limits["Max processes"]) >= 77
