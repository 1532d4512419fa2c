"""The docker backend: one container per sandbox, started on first use and kept warm across
tool calls; each command is a `docker exec` in it.

The container: the run copy bind-mounted read-write at the same absolute path (plus a scratch
folder; a git worktree's git folders read-only), a read-only root file system, a private /tmp
tmpfs, `--network none`, memory / CPU / pids limits, all capabilities dropped,
no-new-privileges, and a non-root user:

- the owner uid:gid of the run copy when that owner is not root (files keep the user's
  ownership);
- otherwise (k2lsp runs as root, e.g. in CI) uid 1000 (the image's `k2lsp` user) with the run
  copy's group added, and the run copy made group-writable before each command (only missing
  g+w bits are added; the run copy is k2lsp's own temporary copy, never the user's tree).

Timeouts: the command runs under coreutils `timeout`, which kills its whole process group at the
deadline; when the command ends, whatever it left running in that group is killed too; a
host-side backstop kills every process of the sandbox user in the container if all that fails.
"""

from __future__ import annotations

import functools
import os
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from k2lsp.errors import SandboxUnavailable
from k2lsp.sandbox import CommandResult, OutputCap, Sandbox, SandboxSettings, signal_note
from k2lsp.sandbox_bwrap import git_dirs

IMAGE_USER = "1000:1000"
# Runs the command under coreutils `timeout` (its own process group, killed at the deadline),
# then kills whatever the command left running in that group (background jobs, fork bombs).
WRAPPER = (
    'timeout -k 5 "$1" /bin/sh -c "$2" & pid=$!; wait "$pid"; rc=$?; '
    'kill -KILL "-$pid" 2>/dev/null; exit "$rc"'
)
BACKSTOP_S = 15.0


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


class DockerSandbox(Sandbox):
    """Runs commands in one warm container."""

    name = "docker"

    def __init__(self, root: Path, settings: SandboxSettings | None = None) -> None:
        super().__init__(root, settings)
        self._container: Any = None
        self._lock = threading.Lock()
        st = self.root.stat()
        self._owner = (st.st_uid, st.st_gid)
        self.user = f"{st.st_uid}:{st.st_gid}" if st.st_uid != 0 else IMAGE_USER

    @classmethod
    def create(cls, root: Path, settings: SandboxSettings | None = None) -> DockerSandbox:
        """A docker sandbox for `root`, or SandboxUnavailable saying why not."""
        settings = settings or SandboxSettings()
        why = problem(settings.image)
        if why is not None:
            problem.cache_clear()
            raise SandboxUnavailable(f"docker sandbox unavailable: {why}; or use --sandbox bwrap")
        return cls(root, settings)

    def container(self) -> Any:
        """The warm container, started on first use."""
        with self._lock:
            if self._container is None:
                self._container = self._start()
            return self._container

    def _start(self) -> Any:
        s = self.settings
        home = self.scratch / "home"
        home.mkdir(exist_ok=True)
        home.chmod(0o1777)
        volumes = {
            str(self.root): {"bind": str(self.root), "mode": "ro" if s.read_only_root else "rw"},
            str(self.scratch): {"bind": str(self.scratch), "mode": "rw"},
        }
        for path in [*git_dirs(self.root), *(Path(p) for p in s.ro_paths)]:
            volumes.setdefault(str(path), {"bind": str(path), "mode": "ro"})
        for host, target in s.ro_binds:
            volumes[host] = {"bind": target, "mode": "ro"}
        group_add = [str(self._owner[1])] if self._owner[0] == 0 else None
        mem = f"{s.memory_mb}m"
        return _client().containers.run(
            s.image,
            ["sleep", "infinity"],
            detach=True,
            init=True,
            name=f"k2lsp-{uuid.uuid4().hex[:12]}",
            network_mode="bridge" if s.network else "none",
            mem_limit=mem,
            memswap_limit=mem,
            nano_cpus=int(s.cpus * 1e9),
            pids_limit=s.pids,
            user=self.user,
            group_add=group_add,
            volumes=volumes,
            read_only=True,
            working_dir=str(self.root),
            tmpfs={"/tmp": f"rw,exec,nosuid,size={s.tmp_mb}m", "/run": "rw,nosuid,size=16m"},
            environment={
                "HOME": str(home),
                "TMPDIR": "/tmp",
                "LANG": "C.UTF-8",
                # the run copy may be owned by another uid than the container user
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "safe.directory",
                "GIT_CONFIG_VALUE_0": "*",
            },
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            labels={"org.k2lsp.sandbox": "1", "org.k2lsp.root": str(self.root)},
        )

    def run(
        self,
        command: str,
        *,
        timeout_s: float = 600.0,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """`docker exec` the command with a timeout; report limits it ran into."""
        start = time.monotonic()
        workdir = self._cwd(cwd)
        if self._owner[0] == 0 and not self.settings.read_only_root:
            grant_group_write(self.root)
        argv = ["/bin/sh", "-c", WRAPPER, "k2lsp", f"{max(timeout_s, 0.1):.3f}", command]
        container, exec_id = self._exec_create(argv, workdir, env or {})
        before = _cgroup_counters(container.id)
        api = container.client.api
        acc = OutputCap(self.settings.output_cap_bytes)
        stream = api.exec_start(exec_id, stream=True)
        reader = threading.Thread(target=_drain, args=(stream, acc), daemon=True)
        reader.start()
        reader.join(timeout_s + BACKSTOP_S)
        if reader.is_alive():  # `timeout` itself failed: kill everything of the sandbox user
            api.exec_start(
                api.exec_create(container.id, ["kill", "-9", "-1"], user=self.user)["Id"]
            )
            reader.join(10)
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        exit_code = 137 if exit_code is None else int(exit_code)
        duration = time.monotonic() - start
        timed_out = exit_code in (124, 137) and duration >= timeout_s * 0.99
        hits = ["timeout"] if timed_out else []
        hits += _limit_hits(before, _cgroup_counters(container.id), exit_code, timed_out, acc)
        text, truncated = acc.text()
        if truncated:
            hits.append("output")
        note = signal_note(exit_code)
        if note and not timed_out:
            text += f"\n[k2lsp: {note}]"
        return CommandResult(
            124 if timed_out else exit_code, text, duration, timed_out, truncated, hits, self.name
        )

    def _exec_create(self, argv: list[str], workdir: Path, env: dict[str, str]) -> tuple[Any, str]:
        """Create the exec; a container that died (e.g. OOM-killed init) is replaced once."""
        import docker

        for attempt in (1, 2):
            container = self.container()
            try:
                exec_id = container.client.api.exec_create(
                    container.id, argv, workdir=str(workdir), environment=env, user=self.user
                )["Id"]
                return container, exec_id
            except (docker.errors.NotFound, docker.errors.APIError) as exc:
                died = isinstance(exc, docker.errors.NotFound) or "is not running" in str(exc)
                if attempt == 2 or not died:
                    raise SandboxUnavailable(f"docker exec failed: {str(exc)[:300]}") from None
                with self._lock:
                    self._container = None
                try:
                    container.remove(force=True)
                except docker.errors.DockerException:
                    pass
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Remove the container and the scratch folder."""
        with self._lock:
            container, self._container = self._container, None
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # already gone or daemon down: nothing left to release
                pass
        super().close()

    def describe(self) -> str:
        """Backend, image, user and limits."""
        return super().describe() + f", image {self.settings.image}, user {self.user}"


def _drain(stream: Any, acc: OutputCap) -> None:
    for chunk in stream:
        acc.feed(chunk)


def grant_group_write(root: Path) -> None:
    """Add g+w (and g+x on folders) where missing under `root`, so the container user can write."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            want = stat.S_IWGRP | stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(st.st_mode) else 0)
            if st.st_mode & want != want:
                os.chmod(path, stat.S_IMODE(st.st_mode) | want)


def _cgroup_dirs(cid: str) -> dict[str, Path]:
    """Host cgroup folders of a container (cgroupfs v1, systemd v2 or cgroupfs v2)."""
    fs = Path("/sys/fs/cgroup")
    for base in (
        fs / "memory" / "docker" / cid,
        fs / "system.slice" / f"docker-{cid}.scope",
        fs / "docker" / cid,
    ):
        if base.is_dir():
            if base.parts[4] == "memory":
                return {"memory": base, "pids": fs / "pids" / "docker" / cid}
            return {"memory": base, "pids": base}
    return {}


def _cgroup_counters(cid: str) -> dict[str, int]:
    """OOM kills and pids-limit hits so far (host view; empty when not visible)."""
    from k2lsp.sandbox_cgroup import _counter

    dirs = _cgroup_dirs(cid)
    if not dirs:
        return {}
    mem = dirs["memory"]
    oom = _counter(mem / "memory.oom_control", "oom_kill") + _counter(
        mem / "memory.events", "oom_kill"
    )
    return {"memory": oom, "pids": _counter(dirs["pids"] / "pids.events", "max")}


def _limit_hits(
    before: dict[str, int], after: dict[str, int], exit_code: int, timed_out: bool, acc: OutputCap
) -> list[str]:
    hits = [k for k in ("memory", "pids") if after.get(k, 0) > before.get(k, 0)]
    if not after and exit_code == 137 and not timed_out:
        hits.append("memory")  # no cgroup view: SIGKILL without a timeout is the OOM killer
    tail = bytes(acc.tail or acc.head)
    if "pids" not in hits and (
        b"fork: Resource temporarily unavailable" in tail or b"Cannot fork" in tail
    ):
        hits.append("pids")
    return hits
