"""Attacks on the sandboxes (issue 10, items 2, 5, 6, 7), run against real bwrap and docker.

Each attack plays hostile test code or a prompt-injected model's command and reports whether the
sandbox contained it. They run in this process (as whoever runs the tests, root in CI) or, through
`run_as_user`, in a process of an ordinary user (`k2user`, created when missing) with the
virtualenv `.ci/test` makes for that user. `python -m tests.sandbox_attacks ATTACK KIND WORKDIR`
runs one attack and prints its outcome as JSON (used by `run_as_user` and bench/attack_campaign.py).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from k2lsp.sandbox.base import Sandbox, SandboxSettings, get_sandbox

REPO = Path(__file__).resolve().parent.parent
USER = "k2user"
USER_VENV = Path(
    os.environ.get("K2TEST_USER_VENV")
    or Path(os.environ.get("K2TEST_CI_CACHE", "/var/cache/k2lsp-ci")) / "user-venv"
)


@dataclass
class Outcome:
    """What one attack achieved."""

    contained: bool
    detail: str
    skipped: str = ""


def _open(kind: str, root: Path, **limits: int) -> Sandbox:

    return get_sandbox(kind, root, SandboxSettings(**limits))


def marker_pids(marker: str) -> list[int]:
    """Pids (host view) of processes whose command line contains `marker`."""
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_until(check: Callable[[], bool], limit_s: float = 60.0) -> bool:
    """Poll `check` until it holds or `limit_s` passed (a bound, not a speed requirement)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _loop(marker: str) -> str:
    """A shell command starting a background process that lives forever, named `marker`."""
    return f"setsid sh -c 'while :; do sleep 1; done' {_split(marker)} >/dev/null 2>&1 &"


def _split(marker: str) -> str:
    """`marker` as shell words that only become `marker` once the shell runs them, so the
    command lines of k2lsp and of the sandbox's outer shell never contain it."""
    return f'{marker[:3]}""{marker[3:]}'


# ---- item 2: the host must never change a host file's mode or owner --------------------------
def attack_chmod_race(kind: str, work: Path) -> Outcome:
    """A background process swaps run-copy files for symlinks to a 0600 host file, forever."""
    secret = work / "secret"
    secret.write_text("host secret\n")
    secret.chmod(0o600)
    before = secret.stat()
    root = work / "rc"
    root.mkdir()
    (root / "f").write_text("x")
    (root / "d").mkdir()
    marker = f"k2race{uuid.uuid4().hex[:8]}"
    names = " ".join(f"f{i}" for i in range(20))
    swap = (
        f"while :; do for n in {names}; do touch $n; ln -sf {secret} $n; rm -f $n; done; "
        f"rm -rf d; ln -s {work} d; rm -f d; mkdir d; done"
    )
    box = _open(kind, root)
    try:
        box.run(
            f"setsid sh -c '{swap}' {_split(marker)} >/dev/null 2>&1 & echo started", timeout_s=60
        )
        for _ in range(10):
            box.run("ls -la >/dev/null", timeout_s=60)
        box.run(f"sh -c '{swap}' {_split(marker)}", timeout_s=3)
        box.run("true", timeout_s=60)
    finally:
        box.close()
    after = secret.stat()
    changed = [
        name
        for name in ("st_mode", "st_uid", "st_gid")
        if getattr(before, name) != getattr(after, name)
    ]
    alive = marker_pids(marker)
    ok = not changed and secret.read_text() == "host secret\n" and not alive
    return Outcome(ok, f"host file changed: {changed or 'nothing'}; swapper alive: {bool(alive)}")


# ---- item 5: root-only host files stay unreadable ----------------------------------------------
def attack_read_root_files(kind: str, work: Path) -> Outcome:
    """Read /etc/shadow, the docker daemon's folder and key, and a 0600 root file."""
    root = work / "rc"
    root.mkdir()
    files = ["/etc/shadow", "/etc/gshadow", "/etc/docker/key.json"]
    folders = ["/var/lib/docker", "/etc/ssl/private"]
    probe = "; ".join(
        [f"cat {f} >/dev/null 2>&1 && echo READ {f}" for f in files]
        + [f"ls -A {d} 2>/dev/null | grep -q . && echo READ {d}" for d in folders]
    )
    box = _open(kind, root)
    try:
        res = box.run(f"id -u; {probe}", timeout_s=60)
    finally:
        box.close()
    read = [line for line in res.output.splitlines() if line.startswith("READ ")]
    uid = res.output.split()[0] if res.output.split() else "?"
    return Outcome(not read and uid != "0", f"sandbox uid {uid}; read: {read or 'nothing'}")


# ---- item 6: memory in tmpfs and shared memory is limited -------------------------------------
MEM = {"memory_mb": 256, "tmp_mb": 64, "shm_mb": 32}


def attack_tmpfs_memory(kind: str, work: Path) -> Outcome:
    """Fill every writable in-memory file system with far more than the memory limit."""
    from k2lsp.sandbox.bwrap import SMALL_TMPFS_MB

    root = work / "rc"
    root.mkdir()
    places = ["/tmp", "/dev/shm", "/var/tmp", "/run", "/dev", str(Path.home())]
    fill = "; ".join(
        f"dd if=/dev/zero of={p}/fill bs=1M count=600 2>/dev/null; "
        f"echo WROTE {p} $(( $(stat -c %s {p}/fill 2>/dev/null || echo 0) / 1048576 ))"
        for p in places
    )
    box = _open(kind, root, **MEM)
    try:
        res = box.run(fill, timeout_s=120)
    finally:
        box.close()
    wrote = {
        line.split()[1]: int(line.split()[2])
        for line in res.output.splitlines()
        if line.startswith("WROTE ") and len(line.split()) == 3
    }
    total = sum(wrote.values())
    bound = MEM["memory_mb"] + MEM["tmp_mb"] + MEM["shm_mb"] + 3 * SMALL_TMPFS_MB
    killed = "memory" in res.limits_hit or res.exit_code == 137
    ok = total <= bound or killed
    return Outcome(
        ok, f"held {total} MiB in memory file systems (bound {bound}); killed: {killed}; {wrote}"
    )


SHM_PROBE = """
import ctypes, os
held = 0
try:
    for _ in range(4):
        fd = os.memfd_create("k2")
        for _ in range(128):
            os.write(fd, bytes(1 << 20))
            held += 1
except OSError as exc:
    print("memfd refused:", exc)
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.restype = ctypes.c_int
libc.shmat.restype = ctypes.c_void_p
for _ in range(4):
    sid = libc.shmget(0, 128 << 20, 0o1600)
    addr = libc.shmat(sid, None, 0) if sid >= 0 else None
    if addr in (None, ctypes.c_void_p(-1).value):
        print("SysV shm refused:", ctypes.get_errno())
        break
    ctypes.memset(addr, 1, 128 << 20)
    held += 128
print("HELD", held, flush=True)
"""


def attack_shared_memory(kind: str, work: Path) -> Outcome:
    """Hold memory no rlimit counts: memfd files and SysV shared memory, 4x the limit."""
    root = work / "rc"
    root.mkdir()
    (root / "probe.py").write_text(SHM_PROBE)
    box = _open(kind, root, **MEM)
    try:
        res = box.run("python3 probe.py", timeout_s=120)
    finally:
        box.close()
    held = [int(line.split()[1]) for line in res.output.splitlines() if line.startswith("HELD ")]
    killed = "memory" in res.limits_hit or res.exit_code == 137
    ok = killed or (bool(held) and held[0] <= MEM["memory_mb"])
    refused = [line for line in res.output.splitlines() if "refused" in line]
    return Outcome(
        ok, f"held {held or '?'} MiB (limit {MEM['memory_mb']}); killed: {killed}; {refused}"
    )


# ---- item 7: no process outlives its command ---------------------------------------------------
def attack_outlive_command(kind: str, work: Path) -> Outcome:
    """Leave a process running after the command ends, and after it times out."""
    root = work / "rc"
    root.mkdir()
    after_end, after_timeout = (f"k2live{uuid.uuid4().hex[:8]}" for _ in range(2))
    box = _open(kind, root)
    try:
        box.run(f"{_loop(after_end)} echo left", timeout_s=60)
        alive_end = marker_pids(after_end)
        res = box.run(f"{_loop(after_timeout)} sleep 600", timeout_s=2)
        alive_timeout = marker_pids(after_timeout)
        left = _own_containers()
    finally:
        box.close()
    ok = not alive_end and not alive_timeout and res.timed_out and not left
    return Outcome(
        ok,
        f"alive after end: {len(alive_end)}, after timeout: {len(alive_timeout)}, "
        f"containers left: {len(left)}",
    )


def _own_containers(pid: int | None = None) -> list[str]:
    if shutil.which("docker") is None:
        return []
    proc = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=org.k2lsp.pid={pid or os.getpid()}"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.split()


CHILD = """
import sys
from pathlib import Path
from k2lsp.sandbox.base import SandboxSettings, get_sandbox
box = get_sandbox(sys.argv[1], Path(sys.argv[2]), SandboxSettings())
box.run(sys.argv[3], timeout_s=900)
"""


def attack_outlive_kill9(kind: str, work: Path) -> Outcome:
    """Kill -9 the k2lsp process mid-command; then start-up reaping / `k2lsp gc` runs."""
    root = work / "rc"
    root.mkdir()
    marker = f"k2orphan{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(root), f"{_loop(marker)} sleep 900"],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        started = wait_until(lambda: bool(marker_pids(marker)), 120)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        gc = subprocess.run(
            [sys.executable, "-m", "k2lsp", "gc", "--state-dir", str(work / "state")],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        gone = wait_until(lambda: not marker_pids(marker), 60)
        left = _own_containers(child.pid)
    finally:
        if child.poll() is None:
            child.kill()
    ok = started and gone and not left
    return Outcome(
        ok,
        f"command started: {started}; its processes gone after kill -9 + gc: {gone}; "
        f"containers left: {len(left)}; gc said: {gc.stdout.strip()[:120]!r}",
    )


from tests.runcopy_attacks import attack_git_metadata, attack_write_race  # noqa: E402

ATTACKS: dict[str, Callable[[str, Path], Outcome]] = {
    "host git via planted .git (item 1)": attack_git_metadata,
    "writes racing a symlink swap (item 3)": attack_write_race,
    "host chmod race (item 2)": attack_chmod_race,
    "read root-only files (item 5)": attack_read_root_files,
    "tmpfs/shm memory (item 6)": attack_tmpfs_memory,
    "memfd/SysV memory (item 6)": attack_shared_memory,
    "outlive command/timeout (item 7)": attack_outlive_command,
    "outlive kill -9 of k2lsp (item 7)": attack_outlive_kill9,
}
SLUGS = {fn.__name__.removeprefix("attack_"): name for name, fn in ATTACKS.items()}


def backend_problem(kind: str) -> str | None:
    """Why `kind` cannot run here (None when it can)."""
    if kind == "bwrap":
        from k2lsp.sandbox import bwrap as sandbox_bwrap

        return sandbox_bwrap.problem()
    from k2lsp.sandbox import docker as sandbox_docker

    return sandbox_docker.problem("k2lsp-sandbox:latest")


def run_attack(slug: str, kind: str, work: Path | None = None) -> Outcome:
    """Run one attack in this process, in `work` (a fresh temporary folder by default)."""
    why = backend_problem(kind)
    if why:
        return Outcome(False, "", skipped=f"{kind} unavailable: {why}")
    made = work is None
    work = work or Path(tempfile.mkdtemp(prefix="k2attack-"))
    try:
        return ATTACKS[SLUGS[slug]](kind, work)
    finally:
        if made:
            shutil.rmtree(work, ignore_errors=True)


# ---- as an ordinary user ---------------------------------------------------------------------
def user_problem() -> str | None:
    """Why attacks cannot run as the ordinary user here (None when they can)."""
    if os.geteuid() != 0:
        return "not root: cannot switch to another user (this run already is an ordinary user)"
    if shutil.which("runuser") is None:
        return "runuser is missing"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        made = subprocess.run(["useradd", "-m", USER], capture_output=True, text=True)
        if made.returncode != 0:
            return f"cannot create user {USER}: {made.stderr.strip()}"
    if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode == 0:
        subprocess.run(["usermod", "-aG", "docker", USER], capture_output=True)
    if not (USER_VENV / "bin" / "python").exists():
        return f"no virtualenv for {USER} at {USER_VENV} (made by .ci/test)"
    return None


_SOURCE: list[Path] = []


def user_source() -> Path:
    """A copy of k2lsp and this module the ordinary user can read (the checkout may be in /root)."""
    if not _SOURCE:
        import atexit

        top = Path(tempfile.mkdtemp(prefix="k2attack-src-"))
        atexit.register(shutil.rmtree, top, True)
        shutil.copytree(REPO / "k2lsp", top / "k2lsp", ignore=shutil.ignore_patterns("__pycache__"))
        (top / "tests").mkdir()
        for name in ("sandbox_attacks.py", "runcopy_attacks.py", "attack_helpers.py"):
            shutil.copy(Path(__file__).parent / name, top / "tests" / name)
        for path in [top, *top.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        _SOURCE.append(top)
    return _SOURCE[0]


def run_as_user(slug: str, kind: str) -> Outcome:
    """Run one attack in a process of the ordinary user `k2user`."""
    why = user_problem()
    if why:
        return Outcome(False, "", skipped=why)
    entry = pwd.getpwnam(USER)
    source = user_source()
    work = Path(tempfile.mkdtemp(prefix="k2attack-user-"))
    os.chown(work, entry.pw_uid, entry.pw_gid)
    try:
        proc = subprocess.run(
            [
                "runuser",
                "-u",
                USER,
                "--",
                "env",
                f"PYTHONPATH={source}",
                f"HOME={entry.pw_dir}",
                f"PATH={USER_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                str(USER_VENV / "bin" / "python"),
                "-m",
                "tests.sandbox_attacks",
                slug,
                kind,
                str(work),
            ],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=900,
        )
        try:
            return Outcome(**json.loads(proc.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError, TypeError):
            return Outcome(False, f"attack process failed: {(proc.stdout + proc.stderr)[-800:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    """CLI: run one attack (slug, backend, work folder) and print its outcome as JSON."""
    slug, kind, work = argv
    print(json.dumps(asdict(run_attack(slug, kind, Path(work)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
