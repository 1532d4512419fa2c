"""A second, private dockerd for tests (remote-engine behaviour without disturbing the main
daemon): its own data-root, exec-root, pidfile, no bridge, no iptables, API on a loopback TCP
port; the sandbox image copied in from the main daemon. Stopped and removed afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IMAGE = "k2lsp-sandbox:latest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker(
    host: str, *args: str, check: bool = False, **kw: object
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": host}
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, check=check, **kw
    )  # type: ignore[call-overload]


def usable() -> str:
    """Why a second dockerd cannot run here ('' when it can)."""
    if os.geteuid() != 0:
        return "starting a dockerd needs root"
    if not shutil.which("dockerd") or not shutil.which("docker"):
        return "dockerd is not installed"
    main = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False)
    return "" if main.returncode == 0 else f"the main daemon has no {IMAGE} to copy"


@contextmanager
def second_dockerd() -> Iterator[str]:
    """Start the private daemon; yield its DOCKER_HOST (`tcp://127.0.0.1:PORT`)."""
    why = usable()
    if why:
        pytest.skip(f"no second dockerd: {why}")
    base = tempfile.mkdtemp(prefix="k2d-", dir="/tmp")  # short: unix socket paths are limited
    host = f"tcp://127.0.0.1:{_free_port()}"
    log = open(os.path.join(base, "log"), "wb")
    proc = subprocess.Popen(
        [
            "dockerd", "--host", host, "--data-root", f"{base}/data", "--exec-root", f"{base}/x",
            "--pidfile", f"{base}/pid", "--bridge", "none", "--iptables=false", "--ip-masq=false",
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(240):
            if _docker(host, "version").returncode == 0 or proc.poll() is not None:
                break
            time.sleep(0.25)
        if proc.poll() is not None:
            pytest.skip(
                f"the second dockerd exited: {open(os.path.join(base, 'log')).read()[-400:]}"
            )
        saved = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
        _docker(host, "load", stdin=saved.stdout, check=True)
        saved.wait()
        yield host
    finally:
        leftovers = _docker(host, "ps", "-aq").stdout.split()
        if leftovers:
            _docker(host, "rm", "-f", *leftovers)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def containers(host: str) -> list[str]:
    """Every container (any state) of the engine at `host`."""
    return _docker(host, "ps", "-aq").stdout.split()


def created_since(host: str, since: float) -> list[str]:
    """Containers created on `host` since `since` (unix time), from the engine's event log."""
    out = _docker(
        host, "events", "--since", f"{since:.0f}", "--until", f"{time.time() + 1:.0f}",
        "--filter", "type=container", "--filter", "event=create", "--format", "{{.ID}}",
    )  # fmt: skip
    return out.stdout.split()
