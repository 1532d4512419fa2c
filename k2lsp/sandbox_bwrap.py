"""The bubblewrap backend: host filesystem read-only, the run copy and a scratch folder writable,
sized private tmpfs for /tmp, /var/tmp, /run and /dev/shm, a read-only /dev, no network, own pid
namespace, killed with its parent.

The command never runs as host root: as an ordinary user it runs as that user (unprivileged user
namespace, all capabilities dropped); as root, bwrap sets up the mounts and the command drops to
the unprivileged `SANDBOX_UID` with setpriv (no capabilities, no new privileges, no groups), with
the run copy handed to that uid around the command (k2lsp.sandbox_owner).

Limits: rlimits set before exec (RLIMIT_NPROC for pids, RLIMIT_DATA for memory, RLIMIT_FSIZE, no
core dumps), and, wherever the cgroup file system is writable (root, or a delegated cgroup), a
cgroup of its own (pids.max, memory limit counting tmpfs and shared memory) nested under k2lsp's
own; see k2lsp.sandbox_cgroup and `memory_enforcement()`. Every process of the command is gone
when `run` returns: the process group is killed, and bwrap's pid-namespace init is waited for
with a pidfd.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import select
import shutil
import subprocess
import threading
from pathlib import Path

from k2lsp.errors import SandboxUnavailable
from k2lsp.sandbox import CommandResult, Sandbox, SandboxSettings, run_process, signal_note
from k2lsp.sandbox_cgroup import Cgroup
from k2lsp.sandbox_owner import (
    Lease,
    sandbox_ids,
    untraversable_ancestors,
)
from k2lsp.sandbox_seccomp import program, program_fd

# Lets git inside the sandbox use a repository another uid owns (the sandbox is the boundary).
SAFE_DIRECTORY_ENV = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
}
SMALL_TMPFS_MB = 64  # /var/tmp, /run, the hidden $HOME and folders covered for the sandbox user

# Environment passed into the sandbox from the host (everything else is dropped).
PASS_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TERM",
    "TZ",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "GOPATH",
    "GOROOT",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "NODE_PATH",
    "JAVA_HOME",
)


# What shells and runtimes print when fork() fails under RLIMIT_NPROC.
FORK_FAILED = (
    "fork: Resource temporarily unavailable",
    "Cannot fork",
    "can't fork",
    "BlockingIOError: [Errno 11] Resource temporarily unavailable",
)

# /proc entries a uid-0 process could write even without capabilities.
PROC_KNOBS = (
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
    "/proc/acpi",
    "/proc/scsi",
)


@functools.lru_cache(maxsize=1)
def problem() -> str | None:
    """Why bwrap cannot be used here, or None when it works."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    try:
        proc = subprocess.run(
            [
                exe,
                "--ro-bind",
                "/",
                "/",
                "--unshare-net",
                "--unshare-pid",
                "--die-with-parent",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to start: {exc}"
    if proc.returncode != 0:
        return (
            f"bwrap cannot create namespaces here: {proc.stderr.strip()[:200]} "
            "(allow unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1)"
        )
    return None


class BwrapSandbox(Sandbox):
    """Runs each command in a fresh bubblewrap sandbox."""

    name = "bwrap"

    def __init__(self, root: Path, settings: SandboxSettings | None = None) -> None:
        super().__init__(root, settings)
        self._home_args: list[str] | None = None
        self.uid, self.gid = sandbox_ids()
        self._setpriv = shutil.which("setpriv") or "setpriv"
        self._lease = Lease(self.root, self.settings.read_only_root)

    @classmethod
    def create(cls, root: Path, settings: SandboxSettings | None = None) -> BwrapSandbox:
        """A bwrap sandbox for `root`, or SandboxUnavailable saying why not."""
        why = problem()
        if why is None and os.geteuid() == 0 and shutil.which("setpriv") is None:
            why = "running as root needs setpriv (util-linux) to drop to an unprivileged uid"
        if why is not None:
            raise SandboxUnavailable(f"bwrap sandbox unavailable: {why}; or use --sandbox docker")
        return cls(root, settings)

    def mounts(self) -> list[str]:
        """bwrap arguments building the file system view (order matters: later wins)."""
        s, mb = self.settings, 1024 * 1024
        args = ["--ro-bind", "/", "/", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", str(s.shm_mb * mb), "--tmpfs", "/dev/shm"]
        args += ["--remount-ro", "/dev", "--proc", "/proc"]
        args += ["--perms", "1777", "--size", str(s.tmp_mb * mb), "--tmpfs", "/tmp"]
        args += ["--perms", "1777", "--size", str(SMALL_TMPFS_MB * mb), "--tmpfs", "/var/tmp"]
        args += ["--size", str(SMALL_TMPFS_MB * mb), "--tmpfs", "/run"]
        if self._home_args is None:  # stat()s of toolchain folders: once per sandbox
            self._home_args = _home_args(self.settings.ro_paths)
        args += self._home_args
        shown = [self.root, self.scratch, *git_dirs(self.root)]
        for hidden in untraversable_ancestors(shown, self.uid, self.gid):
            args += ["--size", str(SMALL_TMPFS_MB * mb), "--tmpfs", str(hidden)]
        # Folders bwrap creates for mount points inside a tmpfs would be 0700 root: open them up.
        made: set[Path] = set()
        for path in shown:
            for parent in reversed(path.parents[:-1]):
                if parent not in made:
                    made.add(parent)
                    args += ["--perms", "0755", "--dir", str(parent)]
        for path in git_dirs(self.root):
            args += ["--ro-bind-try", str(path), str(path)]
        args += ["--ro-bind" if s.read_only_root else "--bind", str(self.root), str(self.root)]
        args += ["--bind", str(self.scratch), str(self.scratch)]
        for host, target in s.ro_binds:  # the project's .venv / node_modules (testrun.env)
            args += ["--ro-bind", host, target]
        if os.geteuid() == 0:  # uid 0 without capabilities may still write some kernel knobs
            for knob in PROC_KNOBS:
                args += ["--ro-bind-try", knob, knob]
        return args

    def argv(
        self, command: str, cwd: Path, info_fd: int | None = None, seccomp_fd: int | None = None
    ) -> list[str]:
        """The bwrap command line for `command`."""
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        home.chmod(0o1777)
        args = ["bwrap", *self.mounts()]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.settings.network:
            args.append("--unshare-net")
        args += ["--die-with-parent", "--new-session", "--chdir", str(cwd)]
        args += ["--setenv", "HOME", str(home), "--setenv", "TMPDIR", "/tmp"]
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        shell = ["/bin/sh", "-c", command]
        if os.geteuid() != 0:
            return [*args, "--cap-drop", "ALL", *shell]
        # As root, bwrap sets up the mounts privileged and the command drops to an
        # unprivileged host uid (a user namespace would map the sandbox user to host uid 0).
        drop = [
            self._setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
        return [*args, *drop, *shell]

    def run(
        self,
        command: str,
        *,
        timeout_s: float = 600.0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run `command` in a new bwrap sandbox with limits; kill everything on timeout."""
        s = self.settings
        base_env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        base_env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        base_env.update(toolchain_env(base_env))
        if os.geteuid() == 0:  # the sandbox uid does not own the repository's git folders
            base_env.update(SAFE_DIRECTORY_ENV)
        workdir = self._cwd(cwd)
        self._lease.acquire()
        cgroup = (
            Cgroup.try_create(memory_mb=s.memory_mb, pids=s.pids) if Cgroup.available() else None
        )
        watcher = NamespaceWatcher()
        # No cgroup counts memfd/SysV shared memory: refuse those calls instead.
        seccomp_fd = None if cgroup else program_fd()
        fds = (watcher.write_fd,) if seccomp_fd is None else (watcher.write_fd, seccomp_fd)
        try:
            nproc = _nproc_limit(s.pids)
            prefix = _launcher(s, cgroup, nproc)
            out = run_process(
                [*(prefix or []), *self.argv(command, workdir, watcher.write_fd, seccomp_fd)],
                timeout_s=timeout_s,
                cap=s.output_cap_bytes,
                cwd=self.root,
                env={**base_env, **(env or {})},
                preexec_fn=None if prefix else functools.partial(_limit_child, s, cgroup, nproc),
                pass_fds=fds,
            )
            watcher.wait_gone()
            hits = cgroup.limits_hit() if cgroup else []
        finally:
            watcher.close()
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            if cgroup:
                cgroup.remove()
            self._lease.release()
        hits = (["timeout"] if out.timed_out else []) + hits + (["output"] if out.truncated else [])
        if not hits and any(m in out.output for m in FORK_FAILED):
            hits.append("pids")
        tail = out.output[-600:]
        if not hits and out.exit_code != 0 and ("MemoryError" in tail or "Cannot allocate" in tail):
            hits.append("memory")  # RLIMIT_DATA refused an allocation
        note = signal_note(out.exit_code)
        output = out.output + (f"\n[k2lsp: {note}]" if note and not out.timed_out else "")
        return CommandResult(
            out.exit_code, output, out.duration_s, out.timed_out, out.truncated, hits, self.name
        )

    def describe(self) -> str:
        """Backend, user and which limits are enforced."""
        user = f"uid {self.uid}" + (" (unprivileged, not root)" if os.geteuid() == 0 else "")
        return super().describe() + f", {user}; {memory_enforcement()}"


def memory_enforcement() -> str:
    """Plain words on which memory limit bwrap enforces on this machine."""
    if Cgroup.available():
        return "memory: cgroup limit (counts heap, tmpfs and shared memory)"
    if program() is not None:
        return (
            "memory: NO cgroup here: heap limited by RLIMIT_DATA, every writable tmpfs (/tmp, "
            "/var/tmp, /run, /dev/shm) sized, memfd and SysV shared memory refused (seccomp); "
            "for one limit over everything give k2lsp a delegated cgroup v2 or use docker"
        )
    return (
        "memory: NO cgroup here: heap limited by RLIMIT_DATA and every writable tmpfs sized; "
        "memfd and SysV shared memory are NOT limited on this architecture (give k2lsp a "
        "delegated cgroup v2, or use docker)"
    )


class NamespaceWatcher:
    """Learns the pid of the sandbox's pid-namespace init from bwrap's --info-fd and waits (with
    a pidfd) until it is gone, which happens only after every process in the namespace is."""

    def __init__(self) -> None:
        self._read_fd, self.write_fd = os.pipe()
        self._pidfd: int | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        data = b""
        while chunk := os.read(self._read_fd, 4096):
            data += chunk
            try:
                pid = int(json.loads(data)["child-pid"])
            except (ValueError, KeyError, TypeError):
                continue
            with contextlib.suppress(OSError):
                self._pidfd = os.pidfd_open(pid)
            return

    def wait_gone(self, timeout_s: float = 30.0) -> None:
        """Block until the namespace's init has exited (bounded)."""
        os.close(self.write_fd)
        self.write_fd = -1
        self._thread.join(5)
        if self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout_s)

    def close(self) -> None:
        """Release the pipe and the pidfd."""
        for fd in (self._read_fd, self.write_fd, self._pidfd):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self.write_fd = -1
        self._pidfd = None


def _nproc_limit(pids: int) -> int:
    """RLIMIT_NPROC counts every process of the user, so allow `pids` more than exist now."""
    uid, count = sandbox_ids()[0], 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count + pids


# Joins the cgroups listed in $1 (":"-separated), then execs the rest of the arguments.
JOIN_CGROUPS = (
    'IFS=:; for p in $1; do echo $$ > "$p/cgroup.procs" || exit 125; done; unset IFS; '
    'shift; exec "$@"'
)


def _launcher(settings: SandboxSettings, cgroup: Cgroup | None, nproc: int) -> list[str] | None:
    """A command prefix joining the cgroup and setting rlimits (`prlimit`), so the sandbox
    starts without a Python preexec_fn (which forces a slow fork of this whole process)."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return None
    mb = 1024 * 1024
    dirs = ":".join(str(d) for d in cgroup.dirs.values()) if cgroup else ""
    return [
        "/bin/sh",
        "-c",
        JOIN_CGROUPS,
        "k2lsp",
        dirs,
        prlimit,
        f"--data={settings.memory_mb * mb}",
        f"--fsize={settings.file_size_mb * mb}",
        "--core=0",
        f"--nproc={nproc}",
        "--",
    ]


def _limit_child(settings: SandboxSettings, cgroup: Cgroup | None, nproc: int) -> None:
    """In the child before exec: join the cgroup and set rlimits (inherited by bwrap's tree)."""
    if cgroup is not None:
        cgroup.join(os.getpid())
    mem = settings.memory_mb * 1024 * 1024
    fsize = settings.file_size_mb * 1024 * 1024
    for limit, value in (
        (resource.RLIMIT_DATA, mem),
        (resource.RLIMIT_FSIZE, fsize),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, nproc),
    ):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


# Toolchains under $HOME that stay visible (read-only) while the rest of $HOME is hidden.
HOME_TOOLCHAINS = (
    ".pyenv",
    ".local/bin",
    ".local/lib",
    ".cargo",
    ".rustup",
    "go",
    ".nvm",
    ".volta",
    ".bun",
    ".deno",
    ".cache/pypoetry/virtualenvs",
    ".virtualenvs",
    ".local/share/virtualenvs",
    ".sdkman",
)


# Toolchain variables whose default is under $HOME (which the sandbox replaces).
HOME_VARS = {
    "CARGO_HOME": ".cargo",
    "RUSTUP_HOME": ".rustup",
    "GOPATH": "go",
    "PYENV_ROOT": ".pyenv",
    "NVM_DIR": ".nvm",
    "VOLTA_HOME": ".volta",
}


def toolchain_env(env: dict[str, str]) -> dict[str, str]:
    """Point toolchains at their real (read-only) folders under the host's home."""
    home = Path(os.path.expanduser("~"))
    out = {}
    for var, rel in HOME_VARS.items():
        if var not in env and var not in os.environ and (home / rel).is_dir():
            out[var] = str(home / rel)
        elif var in os.environ:
            out[var] = os.environ[var]
    return out


def _home_args(ro_paths: list[str]) -> list[str]:
    """Hide $HOME behind a small empty tmpfs, re-exposing toolchains and `ro_paths` read-only.

    The caller binds the run copy and scratch afterwards, so a run copy inside $HOME stays
    reachable.
    """
    home = Path(os.path.expanduser("~")).resolve()
    if home == Path("/") or not home.is_dir():
        return []
    args = ["--size", str(SMALL_TMPFS_MB * 1024 * 1024), "--tmpfs", str(home)]
    keep = [home / rel for rel in HOME_TOOLCHAINS] + [
        Path(p).expanduser().resolve() for p in ro_paths
    ]
    for path in keep:
        if path.exists():
            args += ["--ro-bind-try", str(path), str(path)]
    return args


def git_dirs(root: Path) -> list[Path]:
    """Git folders to show the sandbox for `root`: none. A run copy has no `.git` (k2lsp's own
    git dir lives outside it and is never shown to the sandbox), and a `.git` found in `root`
    was written by the sandbox itself: it is never read or followed (docs/security.md)."""
    del root
    return []
