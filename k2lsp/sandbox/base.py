"""Backends that run a command in the run copy under isolation.

Interface (used by the tools, the loop and the language server):

    get_sandbox(kind: str, root: Path, settings: SandboxSettings | None = None) -> Sandbox
    Sandbox.run(command: str, *, timeout_s: float, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> CommandResult
    Sandbox.scratch -> Path   # a folder writable inside the sandbox and readable on the host
    Sandbox.close() -> None

Backends: `docker` (k2lsp.sandbox.docker), `bwrap` (k2lsp.sandbox.bwrap) and `none` (explicit
opt-in; every result carries a warning). `auto` picks docker when a daemon answers and the image
exists, else bwrap, else refuses with SandboxUnavailable saying how to enable one.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from k2lsp.errors import SandboxUnavailable, UsageError

log = logging.getLogger(__name__)

OUTPUT_CAP_BYTES = 200_000
KINDS = ("auto", "docker", "bwrap", "none")
NONE_WARNING = "ran WITHOUT a sandbox (--sandbox none): the command had full access to this machine"


@dataclass
class SandboxSettings:
    """Limits and choices for a sandbox (see sandbox/profiles/default.toml)."""

    kind: str = "auto"  # auto | docker | bwrap | none
    image: str = "k2lsp-sandbox:latest"
    memory_mb: int = 2048
    cpus: float = 2.0
    pids: int = 512
    network: bool = False
    output_cap_bytes: int = OUTPUT_CAP_BYTES
    file_size_mb: int = 2048  # largest file a command may write (RLIMIT_FSIZE)
    tmp_mb: int = 1024  # size of the private /tmp tmpfs
    shm_mb: int = 64  # size of /dev/shm
    ro_paths: list[str] = field(default_factory=list)  # extra host paths visible read-only
    # (host_path, sandbox_path) read-only binds: the project's .venv / node_modules placed into
    # the run copy (k2lsp.testrun.env.project_binds); project_source is the user's folder
    ro_binds: list[tuple[str, str]] = field(default_factory=list)
    project_source: str | None = None
    read_only_root: bool = False  # mount the run copy read-only (probes of a user's own tree)


@dataclass
class CommandResult:
    """What a command did."""

    exit_code: int
    output: str  # stdout and stderr interleaved, capped
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    limits_hit: list[str] = field(default_factory=list)  # timeout | memory | pids | output
    backend: str = "none"
    warning: str = ""

    @property
    def ok(self) -> bool:
        """Exit code 0 and no limit hit."""
        return self.exit_code == 0 and not self.timed_out


class OutputCap:
    """Keeps the first and last `cap // 2` bytes of a stream of any length."""

    def __init__(self, cap: int) -> None:
        self.cap = max(cap, 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Add a chunk of output."""
        self.total += len(chunk)
        room = self.cap // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self.cap // 2
            if excess > 0:
                del self.tail[:excess]

    def text(self) -> tuple[str, bool]:
        """The kept output as text and whether anything was dropped."""
        kept = len(self.head) + len(self.tail)
        if kept >= self.total:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace"), False
        note = f"\n[... {self.total - kept} bytes of output omitted ...]\n"
        return self.head.decode("utf-8", "replace") + note + self.tail.decode(
            "utf-8", "replace"
        ), True


def cap_bytes(data: bytes, cap: int) -> tuple[str, bool]:
    """Decode output leniently and keep head and tail within `cap` bytes."""
    acc = OutputCap(cap)
    acc.feed(data)
    return acc.text()


def pump(stream: IO[bytes], acc: OutputCap) -> threading.Thread:
    """Read `stream` to EOF into `acc` in a daemon thread."""

    def _run() -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            acc.feed(chunk)

    thread = threading.Thread(target=_run, daemon=True)
    thread.start()
    return thread


@dataclass
class ProcessOutcome:
    """Raw result of `run_process`."""

    exit_code: int
    output: str
    truncated: bool
    timed_out: bool
    duration_s: float


def run_process(
    argv: list[str],
    *,
    timeout_s: float,
    cap: int,
    cwd: Path,
    env: dict[str, str],
    preexec_fn: Callable[[], None] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ProcessOutcome:
    """Run `argv` in its own process group; kill the whole group on timeout; cap the output."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec_fn,
        pass_fds=pass_fds,
    )
    acc = OutputCap(cap)
    assert proc.stdout is not None
    reader = pump(proc.stdout, acc)
    # A blocking wait in a thread (Popen.wait(timeout=...) polls with sleeps of up to 50 ms)
    # that does not reap: the pid stays reserved until the group is killed below.
    waiter = threading.Thread(target=_wait_exit, args=(proc.pid,), daemon=True)
    waiter.start()
    waiter.join(timeout_s)
    timed_out = waiter.is_alive()
    # Kill the group even after a normal exit: background children must not outlive the call.
    kill_group(proc.pid)
    waiter.join()
    proc.wait()
    reader.join(timeout=5)
    proc.stdout.close()
    text, truncated = acc.text()
    code = 124 if timed_out else proc.returncode
    return ProcessOutcome(code, text, truncated, timed_out, time.monotonic() - start)


def _wait_exit(pid: int) -> None:
    """Block until `pid` exits, leaving it unreaped (a zombie keeps its pid and group id)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid`, ignoring a group that is already gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_untrusted(path: Path, cap: int = 64 * 1024 * 1024) -> bytes | None:
    """A file the sandbox wrote (e.g. a JUnit report in the scratch folder), read safely: never
    through a symlink, never blocking on a FIFO or device, at most `cap` bytes. None when it is
    missing or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size < cap and (chunk := os.read(fd, min(1 << 20, cap - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def signal_note(exit_code: int) -> str:
    """A human note for exit codes that mean 'killed by a signal'."""
    if exit_code < 0:
        exit_code = 128 - exit_code
    if exit_code == 137:
        return "killed by SIGKILL (out of memory or a limit)"
    if exit_code > 128 and exit_code - 128 < 65:
        try:
            return f"killed by {signal.Signals(exit_code - 128).name}"
        except ValueError:
            return ""
    return ""


class Sandbox:
    """Base class of backends."""

    name = "base"

    def __init__(self, root: Path, settings: SandboxSettings | None = None) -> None:
        self.root = Path(root).resolve()
        self.settings = settings or SandboxSettings()
        self._scratch: Path | None = None

    @property
    def scratch(self) -> Path:
        """A host folder the sandboxed command can write (same path inside and outside)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="k2lsp-scratch-")).resolve()
            self._scratch.chmod(0o1777)
            # removed by close(); this is the safety net for a sandbox that was never closed
            weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        return self._scratch

    def run(
        self,
        command: str,
        *,
        timeout_s: float = 600.0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run `command` (a shell string) and return its result."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line naming the backend and its limits (for doctor and logs)."""
        s = self.settings
        net = "network on" if s.network else "no network"
        return f"{self.name}: {net}, memory {s.memory_mb} MB, pids {s.pids}, cpus {s.cpus}"

    def close(self) -> None:
        """Release resources (containers, scratch folder)."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cwd(self, cwd: Path | None) -> Path:
        """`cwd` resolved and confined to the run copy."""
        path = (self.root / cwd).resolve() if cwd is not None else self.root
        if path != self.root and self.root not in path.parents:
            raise UsageError(f"working directory {cwd} is outside the run copy {self.root}")
        return path


class NoneSandbox(Sandbox):
    """No isolation: explicit opt-in only; every result carries a warning."""

    name = "none"

    def run(
        self,
        command: str,
        *,
        timeout_s: float = 600.0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run in a subprocess of its own process group; kill the group on timeout."""
        full_env = {**os.environ, **(env or {})}
        out = run_process(
            ["/bin/sh", "-c", command],
            timeout_s=timeout_s,
            cap=self.settings.output_cap_bytes,
            cwd=self._cwd(cwd),
            env=full_env,
        )
        return CommandResult(
            exit_code=out.exit_code,
            output=out.output,
            duration_s=out.duration_s,
            timed_out=out.timed_out,
            truncated=out.truncated,
            limits_hit=(["timeout"] if out.timed_out else [])
            + (["output"] if out.truncated else []),
            backend=self.name,
            warning=NONE_WARNING,
        )


HOW_TO_ENABLE = (
    "no sandbox backend is available. Enable one of:\n"
    "  - docker: install docker (apt-get install docker.io), start the daemon, make sure this user "
    "may use it (group 'docker'), then build the image with `k2lsp sandbox build`;\n"
    "  - bwrap: install bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
    "namespaces (sysctl kernel.unprivileged_userns_clone=1);\n"
    "or pass --sandbox none to run commands WITHOUT isolation (not recommended)."
)


def get_sandbox(kind: str, root: Path, settings: SandboxSettings | None = None) -> Sandbox:
    """The backend for `kind`; `auto` never falls back to `none` silently."""
    settings = settings or SandboxSettings()
    if kind not in KINDS:
        raise UsageError(f"unknown sandbox {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "none":
        log.warning("sandbox 'none': commands run WITHOUT isolation")
        return NoneSandbox(root, settings)
    from k2lsp.sandbox import bwrap as sandbox_bwrap
    from k2lsp.sandbox import docker as sandbox_docker

    if kind == "docker":
        return sandbox_docker.DockerSandbox.create(root, settings)
    if kind == "bwrap":
        return sandbox_bwrap.BwrapSandbox.create(root, settings)
    docker_problem = sandbox_docker.problem(settings.image)
    if docker_problem is None:
        return sandbox_docker.DockerSandbox.create(root, settings)
    sandbox_docker.problem.cache_clear()  # only success is remembered: docker may come up later
    bwrap_problem = sandbox_bwrap.problem()
    if bwrap_problem is None:
        log.info("sandbox auto: using bwrap (docker: %s)", docker_problem)
        return sandbox_bwrap.BwrapSandbox.create(root, settings)
    raise SandboxUnavailable(f"{HOW_TO_ENABLE}\n(docker: {docker_problem}; bwrap: {bwrap_problem})")
