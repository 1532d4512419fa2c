"""Docker containers tied to the k2lsp process that made them: labels, and reaping orphans."""

from __future__ import annotations

import os
from typing import Any

LABEL = "org.k2lsp.sandbox"


PID_LABEL = "org.k2lsp.pid"


START_LABEL = "org.k2lsp.pid-start"


BOOT_LABEL = "org.k2lsp.boot-id"


PIDNS_LABEL = "org.k2lsp.pid-ns"


def _client(timeout: int = 60) -> Any:
    import docker  # lazy: heavy import

    env = dict(os.environ)
    endpoint = docker_endpoint()
    if endpoint:  # a docker context's engine (DOCKER_HOST itself needs nothing)
        env["DOCKER_HOST"] = endpoint
    return docker.from_env(timeout=timeout, environment=env)


def docker_endpoint() -> str:
    """The Docker engine in use when it is not the local socket: DOCKER_HOST, else the endpoint
    of the docker context the docker CLI would use (DOCKER_CONTEXT, else `currentContext` of
    `$DOCKER_CONFIG/config.json`, default `~/.docker`); '' = the default local socket."""
    host = os.environ.get("DOCKER_HOST", "")
    if host:
        return host
    import hashlib
    import json
    from pathlib import Path

    base = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        name = os.environ.get("DOCKER_CONTEXT", "")
        if not name:
            config = json.loads((base / "config.json").read_text(encoding="utf-8"))
            name = str(config.get("currentContext") or "") if isinstance(config, dict) else ""
        if not name or name == "default":
            return ""
        meta = base / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
        endpoint = str(json.loads(meta.read_text(encoding="utf-8"))["Endpoints"]["docker"]["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # no config, no such context: the local engine (as without contexts)
    return "" if endpoint == "unix:///var/run/docker.sock" else endpoint


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
