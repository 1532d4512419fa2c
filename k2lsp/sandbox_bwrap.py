"""The bubblewrap backend: host filesystem read-only, the run copy and a scratch folder writable,
private /tmp, no network, own pid namespace, killed with its parent.

Limits: rlimits set in the child before exec (RLIMIT_NPROC for pids, RLIMIT_DATA for memory,
RLIMIT_FSIZE, no core dumps). The kernel exempts root from RLIMIT_NPROC, so when k2lsp runs as
root and the cgroup file system is writable, the command is also put in a cgroup of its own
(pids.max, memory limit) nested under k2lsp's own cgroup; see k2lsp.sandbox_cgroup.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
from pathlib import Path

from k2lsp.errors import SandboxUnavailable
from k2lsp.sandbox import CommandResult, Sandbox, SandboxSettings, run_process, signal_note
from k2lsp.sandbox_cgroup import Cgroup

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

    @classmethod
    def create(cls, root: Path, settings: SandboxSettings | None = None) -> BwrapSandbox:
        """A bwrap sandbox for `root`, or SandboxUnavailable saying why not."""
        why = problem()
        if why is not None:
            raise SandboxUnavailable(f"bwrap sandbox unavailable: {why}; or use --sandbox docker")
        return cls(root, settings)

    def argv(self, command: str, cwd: Path) -> list[str]:
        """The bwrap command line for `command`."""
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        args = [
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/var/tmp",
            "--ro-bind" if self.settings.read_only_root else "--bind",
            str(self.root),
            str(self.root),
            "--bind",
            str(self.scratch),
            str(self.scratch),
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--chdir",
            str(cwd),
            "--cap-drop",
            "ALL",
            "--setenv",
            "HOME",
            str(home),
            "--setenv",
            "TMPDIR",
            "/tmp",
        ]
        if self._home_args is None:  # stat()s of toolchain folders: once per sandbox
            self._home_args = _home_args(
                self.root, self.settings.ro_paths, self.settings.read_only_root
            )
        args += self._home_args
        if os.geteuid() == 0:
            # Root keeps every capability in bwrap unless dropped, and uid 0 may still write
            # kernel knobs in /proc: drop caps, use a user namespace, make those read-only.
            args += ["--unshare-user", "--uid", "1000", "--gid", "1000"]
            for knob in PROC_KNOBS:
                args += ["--ro-bind-try", knob, knob]
        for host, target in self.settings.ro_binds:
            args += ["--ro-bind", host, target]
        if not self.settings.network:
            args.append("--unshare-net")
        return [*args, "/bin/sh", "-c", command]

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
        cgroup = (
            Cgroup.try_create(memory_mb=s.memory_mb, pids=s.pids) if os.geteuid() == 0 else None
        )
        try:
            nproc = _nproc_limit(s.pids)
            prefix = _launcher(s, cgroup, nproc)
            out = run_process(
                [*(prefix or []), *self.argv(command, self._cwd(cwd))],
                timeout_s=timeout_s,
                cap=s.output_cap_bytes,
                cwd=self.root,
                env={**base_env, **(env or {})},
                preexec_fn=None if prefix else functools.partial(_limit_child, s, cgroup, nproc),
            )
            hits = cgroup.limits_hit() if cgroup else []
        finally:
            if cgroup:
                cgroup.remove()
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
        """Backend and limits."""
        how = "cgroup + rlimits" if os.geteuid() == 0 and Cgroup.available() else "rlimits"
        return super().describe() + f" ({how})"


def _nproc_limit(pids: int) -> int:
    """RLIMIT_NPROC counts every process of the user, so allow `pids` more than exist now."""
    if os.geteuid() == 0:
        return pids  # root is exempt anyway; the cgroup limits it
    uid, count = os.getuid(), 0
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


def _home_args(root: Path, ro_paths: list[str], root_ro: bool = False) -> list[str]:
    """Hide $HOME behind an empty tmpfs, re-exposing toolchains and `ro_paths` read-only.

    The run copy is bound read-write afterwards by the caller's order of arguments, so a run
    copy that lives inside $HOME stays reachable.
    """
    home = Path(os.path.expanduser("~")).resolve()
    if home == Path("/") or not home.is_dir():
        return []
    args = ["--tmpfs", str(home)]
    keep = [home / rel for rel in HOME_TOOLCHAINS] + [
        Path(p).expanduser().resolve() for p in ro_paths
    ]
    keep += git_dirs(root)
    for path in keep:
        if path.exists():
            args += ["--ro-bind-try", str(path), str(path)]
    # The run copy (and its scratch) must come after the tmpfs over $HOME.
    if home in root.parents or home == root:
        args += ["--ro-bind" if root_ro else "--bind", str(root), str(root)]
    return args


def git_dirs(root: Path) -> list[Path]:
    """For a git worktree (`.git` is a file), the git folders it points to (read-only use)."""
    dotgit = root / ".git"
    if not dotgit.is_file():
        return []
    try:
        line = dotgit.read_text(encoding="utf-8").strip()
    except OSError:
        return []
    if not line.startswith("gitdir:"):
        return []
    gitdir = (root / line.split(":", 1)[1].strip()).resolve()
    common = gitdir
    commondir = gitdir / "commondir"
    if commondir.is_file():
        common = (gitdir / commondir.read_text(encoding="utf-8").strip()).resolve()
    return [common] if gitdir.is_relative_to(common) else [common, gitdir]
