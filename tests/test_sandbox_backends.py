"""The docker and bwrap backends against the real dockerd and the real bubblewrap: isolation
(network, file system, home), limits (fork bomb, memory hog, timeout, output cap)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from k2lsp.sandbox import Sandbox, SandboxSettings
from tests.sandbox_helpers import open_sandbox

BACKENDS = [
    pytest.param("bwrap", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
]
TIGHT = SandboxSettings(memory_mb=256, pids=64, cpus=1.0, output_cap_bytes=20_000)


@pytest.fixture(scope="module", params=BACKENDS)
def sb(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    """One warm sandbox per backend for the module, with small limits."""
    root = tmp_path_factory.mktemp(f"runcopy-{request.param}")
    box = open_sandbox(request.param, root, TIGHT)
    yield box
    box.close()


def test_command_runs_in_the_run_copy_and_can_write_there(sb: Sandbox) -> None:
    res = sb.run("pwd; echo hello > made.txt; mkdir -p sub && echo x > sub/y.txt", timeout_s=60)
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == str(sb.root)
    assert (sb.root / "made.txt").read_text() == "hello\n"
    assert (sb.root / "sub" / "y.txt").exists()
    assert res.backend == sb.name and not res.warning


def _host_ip() -> str:
    """A non-loopback address of this machine (falls back to 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def test_network_is_blocked_even_to_a_port_on_the_host(sb: Sandbox) -> None:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def serve() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                continue

    stop = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    script = (
        "import socket\n"
        f"for host in ('127.0.0.1', '{_host_ip()}', '172.17.0.1'):\n"
        "    try:\n"
        f"        socket.create_connection((host, {port}), timeout=3); print('CONNECTED', host)\n"
        "    except OSError as exc:\n"
        "        print('blocked', host, type(exc).__name__)\n"
    )
    (sb.root / "net.py").write_text(script)
    try:
        res = sb.run("python3 net.py", timeout_s=60)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert res.exit_code == 0, res.output
    assert "CONNECTED" not in res.output
    assert res.output.count("blocked") == 3
    assert accepted == []


def test_writes_outside_the_run_copy_fail(sb: Sandbox, tmp_path: Path) -> None:
    outside = tmp_path / f"outside-{uuid.uuid4().hex}"
    home_file = Path.home() / f".k2lsp-sandbox-probe-{uuid.uuid4().hex}"
    etc_file = Path("/etc") / f"k2lsp-probe-{uuid.uuid4().hex}"
    targets = [outside, home_file, etc_file, Path("/usr/k2lsp-probe")]
    cmd = "; ".join(f"echo x > {t} && echo WROTE {t}" for t in targets)
    res = sb.run(cmd, timeout_s=60)
    for target in (outside, etc_file, Path("/usr/k2lsp-probe")):
        assert f"WROTE {target}" not in res.output
    # bwrap shows an empty throw-away tmpfs as $HOME: a write may succeed there, never on the host
    for target in targets:
        assert not target.exists(), f"{target} was written from inside the sandbox"


def test_home_directory_is_not_readable(sb: Sandbox) -> None:
    secret = Path.home() / f".k2lsp-secret-{uuid.uuid4().hex}"
    secret.write_text("TOP-SECRET-VALUE")
    try:
        res = sb.run(f"cat {secret}", timeout_s=60)
        listing = sb.run(f"ls -a {Path.home()}", timeout_s=60)
    finally:
        secret.unlink()
    assert res.exit_code != 0 and "TOP-SECRET-VALUE" not in res.output
    assert secret.name not in listing.output


def test_fork_bomb_is_contained(sb: Sandbox) -> None:
    res = sb.run("bomb() { bomb | bomb & }; bomb; sleep 3; echo survived", timeout_s=30)
    assert "pids" in res.limits_hit or res.timed_out, res.output[-500:]
    assert res.duration_s < 120
    # nothing of the bomb is left: the sandbox can fork again at once
    after = sb.run(
        "for i in 1 2 3 4 5 6 7 8; do (sleep 0.2) & done; wait; echo still-works", timeout_s=60
    )
    assert after.exit_code == 0 and "still-works" in after.output, after.output[-300:]


def test_memory_hog_is_contained(sb: Sandbox) -> None:
    (sb.root / "hog.py").write_text(
        "b = bytearray(1024 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])\nprint('ALLOCATED')\n"
    )
    hog = "python3 hog.py"
    res = sb.run(hog, timeout_s=60)
    assert res.exit_code != 0
    assert "ALLOCATED" not in res.output
    assert "memory" in res.limits_hit, (res.limits_hit, res.output[-500:])


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_sleeping_command_is_killed_at_the_timeout_with_its_children(sb: Sandbox) -> None:
    secs = 600 + os.getpid() % 97  # a distinctive argument to find leftovers by
    res = sb.run(f"sleep {secs} & sleep {secs}; echo never", timeout_s=2)
    assert res.timed_out and "timeout" in res.limits_hit
    assert res.exit_code == 124
    assert "never" not in res.output
    assert res.duration_s < 60
    deadline = time.monotonic() + 20
    while _processes_with(f"sleep {secs}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(f"sleep {secs}") == []


def test_huge_output_is_capped_keeping_head_and_tail(sb: Sandbox) -> None:
    res = sb.run(
        "echo FIRST-LINE; yes 0123456789 | head -c 30000000; echo; echo LAST-LINE", timeout_s=120
    )
    assert res.exit_code == 0
    assert res.truncated and "output" in res.limits_hit
    assert len(res.output.encode()) < TIGHT.output_cap_bytes + 200
    assert res.output.startswith("FIRST-LINE") and res.output.rstrip().endswith("LAST-LINE")
    assert "bytes of output omitted" in res.output


def test_background_jobs_do_not_outlive_their_command(sb: Sandbox) -> None:
    secs = 700 + os.getpid() % 89
    res = sb.run(f"sleep {secs} & echo started", timeout_s=60)
    assert res.exit_code == 0 and "started" in res.output and not res.timed_out
    deadline = time.monotonic() + 20
    while _processes_with(f"sleep {secs}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(f"sleep {secs}") == []


def test_exit_code_env_and_subfolder_cwd(sb: Sandbox) -> None:
    (sb.root / "pkg").mkdir(exist_ok=True)
    res = sb.run(
        'echo "$K2_PROBE"; basename "$PWD"; exit 7',
        timeout_s=60,
        cwd=Path("pkg"),
        env={"K2_PROBE": "value-42"},
    )
    assert res.exit_code == 7
    assert res.output.split() == ["value-42", "pkg"]


@pytest.mark.parametrize("kind", BACKENDS)
def test_read_only_root_cannot_be_written(kind: str, tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("same")
    tmp_path.chmod(0o755)  # readable like a clone: read-only mode adds no permission bits
    settings = SandboxSettings(read_only_root=True)
    with open_sandbox(kind, tmp_path, settings) as box:
        res = box.run("cat kept.txt; echo x > kept.txt; echo y > new.txt", timeout_s=60)
    # stdout and stderr interleave in any order (docker multiplexes them)
    assert "same" in res.output and "Read-only file system" in res.output
    assert (tmp_path / "kept.txt").read_text() == "same" and not (tmp_path / "new.txt").exists()
