"""How many candidate sandboxes fit at once: memory and pids, of this machine (bwrap, local
docker) or of the remote Docker engine (`DOCKER_HOST`, or the current docker context).

Each sandbox may use up to its limits (`memory_mb`, `pids` of the sandbox settings). N
candidates run at once only when N times those limits fit into what is available; the others
queue and start as running ones finish. At least one always runs (a machine that cannot fit
one sandbox still runs the single-candidate case, as without heavy mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Headroom kept for everything else (the editor, the loop, the OS): a quarter of what is free.
HEADROOM = 0.75


@dataclass(frozen=True)
class Capacity:
    """What the place the sandboxes run in has free."""

    where: str  # "this machine" | "docker engine at tcp://…"
    memory_mb: int | None  # None: unknown
    pids: int | None


@dataclass(frozen=True)
class Admission:
    """How many candidates run at once, and why."""

    at_once: int
    why: str


def _meminfo_mb(key: str = "MemAvailable") -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _own_cgroup() -> Path | None:
    """This process's cgroup v2 folder (None on v1 or when unreadable)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    except OSError:
        return None
    return None


def _cgroup_free(cg: Path | None, limit: str, current: str) -> int | None:
    if cg is None:
        return None
    top = _read_int(cg / limit)  # "max" (no limit) is not a number: None
    used = _read_int(cg / current)
    return None if top is None or used is None else max(0, top - used)


def local_capacity() -> Capacity:
    """Free memory and pids of this machine, within this process's cgroup limits."""
    memory = _meminfo_mb()
    cg = _own_cgroup()
    cg_mem = _cgroup_free(cg, "memory.max", "memory.current")
    if cg_mem is not None:
        memory = min(memory or cg_mem // 2**20, cg_mem // 2**20)
    tasks = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())
    pid_max = _read_int(Path("/proc/sys/kernel/pid_max"))
    pids = None if pid_max is None else max(0, pid_max - tasks)
    cg_pids = _cgroup_free(cg, "pids.max", "pids.current")
    if cg_pids is not None:
        pids = cg_pids if pids is None else min(pids, cg_pids)
    return Capacity("this machine", memory, pids)


def docker_capacity(client: Any = None) -> Capacity:
    """Memory the Docker engine has (remote engines report their own machine)."""
    from k2lsp.sandbox.reap import docker_endpoint

    endpoint = docker_endpoint()
    if not endpoint or endpoint.startswith("unix://"):  # an engine on this machine
        local = local_capacity()
        return Capacity("this machine (local docker)", local.memory_mb, local.pids)
    try:
        if client is None:
            from k2lsp.sandbox.reap import _client

            client = _client(timeout=10)
        info = client.info()
    except Exception:
        return Capacity(f"docker engine at {endpoint}", None, None)
    total = int(info.get("MemTotal") or 0) // 2**20 or None
    return Capacity(f"docker engine at {endpoint}", total, None)


def admit(n: int, memory_mb: int, pids: int, capacity: Capacity) -> Admission:
    """How many of `n` candidates, each with a sandbox of `memory_mb` and `pids`, run at once."""
    fits = [n]
    reasons = []
    if capacity.memory_mb is not None and memory_mb > 0:
        by_mem = int(capacity.memory_mb * HEADROOM) // memory_mb
        fits.append(by_mem)
        reasons.append(f"memory {capacity.memory_mb} MiB free, {memory_mb} MiB per sandbox")
    if capacity.pids is not None and pids > 0:
        by_pids = int(capacity.pids * HEADROOM) // pids
        fits.append(by_pids)
        reasons.append(f"{capacity.pids} pids free, {pids} per sandbox")
    at_once = max(1, min(fits))
    detail = "; ".join(reasons) or "limits unknown"
    if at_once < n:
        why = (
            f"{at_once} of {n} sandboxes fit on {capacity.where} at once ({detail}); the rest queue"
        )
    else:
        why = f"all {n} sandboxes fit on {capacity.where} ({detail})"
    return Admission(at_once, why)


def plan_admission(settings: Any, n: int) -> Admission:
    """`admit` for the sandbox `settings` configure (docker: the engine's capacity)."""
    from k2lsp.sandbox.profile import settings_for

    sb = settings_for(settings)
    capacity = docker_capacity() if sb.kind == "docker" else local_capacity()
    if sb.kind == "none":
        return Admission(n, f"all {n} run at once (no sandbox)")
    return admit(n, sb.memory_mb, sb.pids, capacity)
