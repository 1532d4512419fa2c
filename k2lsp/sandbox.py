"""Backends that run a command in the run copy under isolation.

INTERFACE (owned by the sandbox issue; this first version has only the explicit `none`
backend, a plain subprocess with timeout and output cap):

    get_sandbox(kind: str, root: Path, settings: SandboxSettings | None = None) -> Sandbox
    Sandbox.run(command: str, *, timeout_s: float, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> CommandResult
    Sandbox.close() -> None
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from k2lsp.errors import SandboxUnavailable

OUTPUT_CAP_BYTES = 200_000


@dataclass
class SandboxSettings:
    """Limits and choices for a sandbox."""

    kind: str = "auto"  # auto | docker | bwrap | none
    image: str = "k2lsp-sandbox:latest"
    memory_mb: int = 2048
    cpus: float = 2.0
    pids: int = 512
    network: bool = False
    output_cap_bytes: int = OUTPUT_CAP_BYTES


@dataclass
class CommandResult:
    """What a command did."""

    exit_code: int
    output: str  # stdout and stderr interleaved, capped
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    limits_hit: list[str] = field(default_factory=list)
    backend: str = "none"
    warning: str = ""


class Sandbox:
    """Base class of backends."""

    name = "base"

    def __init__(self, root: Path, settings: SandboxSettings | None = None) -> None:
        self.root = Path(root).resolve()
        self.settings = settings or SandboxSettings()

    def run(self, command: str, *, timeout_s: float = 600.0, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run `command` (a shell string) and return its result."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (containers)."""


class NoneSandbox(Sandbox):
    """No isolation: explicit opt-in only; every result carries a warning."""

    name = "none"

    def run(self, command: str, *, timeout_s: float = 600.0, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run in a subprocess of its own process group; kill the group on timeout."""
        start = time.monotonic()
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=str(cwd or self.root), env=full_env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            out, _ = proc.communicate()
        text, truncated = cap_bytes(out or b"", self.settings.output_cap_bytes)
        return CommandResult(
            exit_code=proc.returncode if not timed_out else 124, output=text,
            duration_s=time.monotonic() - start, timed_out=timed_out, truncated=truncated,
            limits_hit=["timeout"] if timed_out else [], backend=self.name,
            warning="ran WITHOUT a sandbox (--sandbox none): the command had full access to this machine",
        )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cap_bytes(data: bytes, cap: int) -> tuple[str, bool]:
    """Decode output leniently and keep head and tail within `cap` bytes."""
    if len(data) <= cap:
        return data.decode("utf-8", "replace"), False
    head, tail = data[: cap // 2], data[-cap // 2 :]
    omitted = len(data) - len(head) - len(tail)
    text = head.decode("utf-8", "replace") + f"\n[... {omitted} bytes of output omitted ...]\n"
    return text + tail.decode("utf-8", "replace"), True


def get_sandbox(kind: str, root: Path, settings: SandboxSettings | None = None) -> Sandbox:
    """The backend for `kind`; `auto` never falls back to `none` silently."""
    if kind == "none":
        return NoneSandbox(root, settings)
    raise SandboxUnavailable(
        f"sandbox backend {kind!r} is not available yet; pass --sandbox none to run unsandboxed"
    )
