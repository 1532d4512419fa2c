"""The docker backend: every command runs in a container of its own, removed before `run`
returns (also on timeout, cancel and errors).

The container: the run copy bind-mounted read-write at the same absolute path (plus a scratch
folder; no git metadata: the run copy has none), a read-only root file system, sized tmpfs for
/tmp, /run and /dev/shm (counted by the container's memory limit), `--network none`, memory /
CPU / pids limits, all capabilities dropped, no-new-privileges, `--init`, no log driver, and a
non-root user:

- as an ordinary user, that user's own uid:gid (files keep the user's ownership);
- as root, the dedicated unprivileged `SANDBOX_UID`, to which the run copy is handed before the
  command and from which it is handed back after the container is gone, with fd-based,
  no-follow operations only (k2lsp.sandbox_owner). No host-side chmod by path happens at all.
  Host folders above the run copy that uid cannot pass through (e.g. /root, 0700) are covered by
  an empty tmpfs inside the container.

Every process of a command dies with it: when the command's shell exits, `--init` (pid 1) exits
and the kernel kills the rest of the container's pid namespace; the container is then removed.
Containers carry labels naming the k2lsp process (pid, its start time, the boot id); when k2lsp
is killed, `reap_orphans` (run at the next start and by `k2lsp gc`) removes them, and each one
also kills itself shortly after its own deadline.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from k2lsp.errors import SandboxUnavailable
from k2lsp.sandbox import CommandResult, OutputCap, Sandbox, SandboxSettings, signal_note
from k2lsp.sandbox_bwrap import SAFE_DIRECTORY_ENV, git_dirs
from k2lsp.sandbox_owner import Lease, sandbox_ids, untraversable_ancestors

LABEL = "org.k2lsp.sandbox"
PID_LABEL = "org.k2lsp.pid"
START_LABEL = "org.k2lsp.pid-start"
BOOT_LABEL = "org.k2lsp.boot-id"
PIDNS_LABEL = "org.k2lsp.pid-ns"
SELF_DESTRUCT_S = 30.0  # a container outlives its deadline by at most this, even if k2lsp died
_reaped = False


def _client(timeout: int = 60) -> Any:
    import docker  # lazy: heavy import

    return docker.from_env(timeout=timeout)


@functools.lru_cache(maxsize=8)
def problem(image: str) -> str | None:
    """Why the docker backend cannot be used with `image`, or None when it can."""
    try:
        import docker
    except ImportError:
        return "the docker Python SDK is not installed (pip install docker)"
    try:
        client = _client(timeout=10)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        return f"no docker daemon answers ({str(exc)[:160]}); start dockerd or check DOCKER_HOST"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return f"image {image!r} is missing; build it with `k2lsp sandbox build`"
    except (docker.errors.DockerException, OSError) as exc:
        return f"cannot inspect image {image!r}: {str(exc)[:160]}"
    return None


# ---- who owns a container --------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def boot_id() -> str:
    """This boot's id (a container from another boot cannot belong to a live process)."""
    return _read("/proc/sys/kernel/random/boot_id")


def start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot ('' when it does not exist)."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rpartition(")")[2].split()[19] if ")" in stat else ""


def pid_namespace() -> str:
    """The pid namespace this process lives in (pids only mean something within one)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def owner_labels() -> dict[str, str]:
    """Labels tying a container to this k2lsp process."""
    pid = os.getpid()
    return {
        LABEL: "1",
        PID_LABEL: str(pid),
        START_LABEL: start_time(pid),
        BOOT_LABEL: boot_id(),
        PIDNS_LABEL: pid_namespace(),
    }


def is_orphan(labels: dict[str, str]) -> bool:
    """Whether the k2lsp process that made a container is gone (pid + start time + boot id)."""
    if labels.get(BOOT_LABEL) != boot_id():
        return True  # made before this boot
    if labels.get(PIDNS_LABEL) != pid_namespace():
        return False  # another pid namespace: its pids cannot be checked from here
    try:
        pid = int(labels.get(PID_LABEL, ""))
    except ValueError:
        return False
    return start_time(pid) != labels.get(START_LABEL)


def reap_orphans(client: Any = None) -> list[str]:
    """Remove sandbox containers whose k2lsp process is gone; return their names."""
    import docker

    client = client or _client(timeout=30)
    removed = []
    for container in client.containers.list(all=True, filters={"label": PID_LABEL}):
        if is_orphan(container.labels):
            try:
                container.remove(force=True)
                removed.append(container.name)
            except docker.errors.DockerException:
                continue  # removed meanwhile by its owner or another reaper
    return removed


def reap_quietly() -> list[str]:
    """`reap_orphans` for `k2lsp gc`: nothing when docker is not installed or not running."""
    try:
        return reap_orphans()
    except Exception:  # no SDK, no daemon, no permission: nothing we could have removed
        return []


# ---- the backend -----------------------------------------------------------------------------
class DockerSandbox(Sandbox):
    """Runs each command in a fresh container."""

    name = "docker"

    def __init__(self, root: Path, settings: SandboxSettings | None = None) -> None:
        super().__init__(root, settings)
        self.uid, self.gid = sandbox_ids()
        self.user = f"{self.uid}:{self.gid}"
        self._lease = Lease(self.root, self.settings.read_only_root)
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._api: Any = None
        self._cover: Path | None = None  # empty folders shown over untraversable ones
        self._closes = 0  # close() calls so far: a run that sees it change was cancelled

    @classmethod
    def create(cls, root: Path, settings: SandboxSettings | None = None) -> DockerSandbox:
        """A docker sandbox for `root`, or SandboxUnavailable saying why not."""
        global _reaped
        settings = settings or SandboxSettings()
        why = problem(settings.image)
        if why is not None:
            problem.cache_clear()
            raise SandboxUnavailable(f"docker sandbox unavailable: {why}; or use --sandbox bwrap")
        if not _reaped:  # containers of crashed k2lsp processes: once per process
            _reaped = True
            reap_quietly()
        return cls(root, settings)

    def api(self) -> Any:
        """The low-level docker API client (made on first use)."""
        with self._lock:
            if self._api is None:
                self._api = _client().api
            return self._api

    def mounts(self) -> tuple[list[str], dict[str, str]]:
        """Bind mounts (`src:dst:mode`) and tmpfs mounts (docker mounts parents first)."""
        s, home = self.settings, self.scratch / "home"
        binds = [
            f"{self.root}:{self.root}:{'ro' if s.read_only_root else 'rw'}",
            f"{self.scratch}:{self.scratch}:rw",
        ]
        for path in [*git_dirs(self.root), *(Path(p) for p in s.ro_paths)]:
            binds.append(f"{path}:{path}:ro")
        for host, target in s.ro_binds:  # the project's .venv / node_modules (testrun.env)
            if ":" not in host + target:
                binds.append(f"{host}:{target}:ro")
        tmpfs = {"/tmp": f"rw,exec,nosuid,size={s.tmp_mb}m", "/run": "rw,nosuid,size=16m"}
        shown = [self.root, self.scratch, home, *git_dirs(self.root)]
        shown += [Path(p) for p in s.ro_paths] + [Path(t) for _, t in s.ro_binds]
        for hidden in untraversable_ancestors(shown, self.uid, self.gid):
            # Not a tmpfs: runc gives a tmpfs the mode of the image's folder it covers (the
            # image's /root is 0700), whatever `mode=` says. A read-only bind of an empty
            # folder k2lsp made (0755, only the mount points below it) keeps its own mode.
            binds.insert(0, f"{self._cover_for(hidden, shown)}:{hidden}:ro")
        return binds, tmpfs

    def _cover_for(self, hidden: Path, shown: list[Path]) -> Path:
        """An empty 0755 folder holding just the mount points of `shown` below `hidden`.

        It lives in a private folder the sandbox never sees, so no command can swap it."""
        with self._lock:
            if self._cover is None:
                self._cover = Path(tempfile.mkdtemp(prefix="k2lsp-cover-"))
                os.chmod(self._cover, 0o755)
        cover = self._cover / uuid.uuid4().hex[:12]
        cover.mkdir()
        os.chmod(cover, 0o755)
        for path in shown:
            if hidden not in Path(path).parents:
                continue
            at = cover
            for part in Path(path).relative_to(hidden).parts:
                at = at / part
                if not at.is_dir():
                    at.mkdir()
                    os.chmod(at, 0o755)
        return cover

    def _create(self, argv: list[str], workdir: Path, env: dict[str, str]) -> str:
        s = self.settings
        api = self.api()
        binds, tmpfs = self.mounts()
        mem = f"{s.memory_mb}m"
        host_config = api.create_host_config(
            binds=binds,
            tmpfs=tmpfs,
            shm_size=f"{s.shm_mb}m",
            network_mode="bridge" if s.network else "none",
            mem_limit=mem,
            memswap_limit=mem,
            nano_cpus=int(s.cpus * 1e9),
            pids_limit=s.pids,
            read_only=True,
            init=True,
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            log_config={"Type": "none", "Config": {}},
        )
        environment = {
            "HOME": str(self.scratch / "home"),
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            **SAFE_DIRECTORY_ENV,  # the run copy's git folders belong to another uid
            **env,
        }
        return str(
            api.create_container(
                s.image,
                argv,
                user=self.user,
                working_dir=str(workdir),
                environment=environment,
                labels={**owner_labels(), "org.k2lsp.root": str(self.root)},
                host_config=host_config,
                name=f"k2lsp-{uuid.uuid4().hex[:12]}",
                network_disabled=not s.network,
            )["Id"]
        )

    def run(
        self,
        command: str,
        *,
        timeout_s: float = 600.0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run `command` in a new container with a timeout; report limits it ran into."""
        import docker

        start = time.monotonic()
        workdir = self._cwd(cwd)
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        home.chmod(0o1777)
        deadline = f"{max(timeout_s, 0.1) + SELF_DESTRUCT_S:.3f}"
        argv = ["timeout", "-s", "KILL", deadline, "/bin/sh", "-c", command]
        acc = OutputCap(self.settings.output_cap_bytes)
        closes = self._closes
        self._lease.acquire()
        cid = ""
        try:
            cid = self._create(argv, workdir, env or {})
            with self._lock:
                self._active.add(cid)
                cancelled = self._closes != closes
            if cancelled:
                return self._cancelled(start)
            exit_code, timed_out, oom = self._attach_and_wait(cid, acc, timeout_s)
        except docker.errors.DockerException as exc:
            if self._closes != closes:  # close() removed the container under us
                return self._cancelled(start)
            raise SandboxUnavailable(f"docker run failed: {str(exc)[:300]}") from None
        finally:
            if cid:
                self._remove(cid)
            self._lease.release()
        duration = time.monotonic() - start
        hits = ["timeout"] if timed_out else []
        hits += _limit_hits(oom, acc)
        text, truncated = acc.text()
        if truncated:
            hits.append("output")
        note = signal_note(exit_code)
        if note and not timed_out:
            text += f"\n[k2lsp: {note}]"
        return CommandResult(
            124 if timed_out else exit_code, text, duration, timed_out, truncated, hits, self.name
        )

    def _cancelled(self, start: float) -> CommandResult:
        """The result of a command whose sandbox was closed while it ran."""
        text = "[k2lsp: cancelled: the sandbox was closed while the command ran]"
        return CommandResult(137, text, time.monotonic() - start, backend=self.name)

    def _attach_and_wait(
        self, cid: str, acc: OutputCap, timeout_s: float
    ) -> tuple[int, bool, bool]:
        """Start the container with its output attached; kill it at the deadline."""
        import docker

        api = self.api()
        stream = api.attach(cid, stdout=True, stderr=True, stream=True, logs=False)
        reader = threading.Thread(target=_drain, args=(stream, acc), daemon=True)
        reader.start()
        api.start(cid)
        reader.join(timeout_s)
        timed_out = reader.is_alive()
        if timed_out:
            try:
                api.kill(cid)
            except docker.errors.DockerException:
                pass  # exited at the same moment, or removed by close()
            reader.join(10)
        try:
            code = api.wait(cid, timeout=30).get("StatusCode")
            oom = bool(api.inspect_container(cid)["State"].get("OOMKilled"))
        except docker.errors.NotFound:  # removed by close(): the run was cancelled
            return 137, timed_out, False
        except (docker.errors.DockerException, OSError):
            return 137, timed_out, False
        return (137 if code is None else int(code)), timed_out, oom

    def _remove(self, cid: str) -> None:
        """Remove a container and everything still running in it."""
        import docker

        try:
            self.api().remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException:
            # retried by reap_orphans at the next start or `k2lsp gc`
            pass
        with self._lock:
            self._active.discard(cid)

    def close(self) -> None:
        """Remove containers still running (a cancelled run) and the scratch folder."""
        with self._lock:
            self._closes += 1
            active = list(self._active)
        for cid in active:
            self._remove(cid)
        if self._cover is not None:
            shutil.rmtree(self._cover, ignore_errors=True)
            self._cover = None
        super().close()

    def describe(self) -> str:
        """Backend, image, user and limits."""
        who = "unprivileged, not root" if os.geteuid() == 0 else "your own uid"
        return (
            super().describe()
            + f", image {self.settings.image}, user {self.user} ({who}); memory: cgroup limit "
            "(counts heap, tmpfs and shared memory); one container per command"
        )


def _drain(stream: Any, acc: OutputCap) -> None:
    try:
        for chunk in stream:
            acc.feed(chunk)
    except Exception:  # the container was removed under the stream (cancel): output ends here
        pass


def _limit_hits(oom: bool, acc: OutputCap) -> list[str]:
    hits = ["memory"] if oom else []
    tail = bytes(acc.tail or acc.head)
    if b"fork: Resource temporarily unavailable" in tail or b"Cannot fork" in tail:
        hits.append("pids")
    return hits
