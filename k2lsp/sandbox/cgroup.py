"""A throw-away cgroup for one sandboxed command (used by the bwrap backend wherever the cgroup
file system is writable: as root, or in a cgroup delegated to the user).

cgroup v2: a child of this process's own cgroup (needs `memory` and `pids` enabled in the
parent's subtree_control). cgroup v1: a child of this process's own `memory` and `pids`
cgroups. The new cgroup is always nested under k2lsp's own, so the command stays inside
whatever limits k2lsp itself runs under. Anything that fails makes `try_create` return None
(rlimits still apply).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """controller ('' for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for ctl in controllers.split(",") if controllers else [""]:
            out[ctl] = path
    return out


class Cgroup:
    """Folders of one cgroup (one per controller in v1, one in v2)."""

    def __init__(self, dirs: dict[str, Path], v2: bool) -> None:
        self.dirs = dirs
        self.v2 = v2

    @staticmethod
    def _targets() -> tuple[dict[str, Path], bool] | None:
        own = _own_paths()
        if (CGROUP_FS / "memory").is_dir() and (CGROUP_FS / "pids").is_dir():
            if "memory" in own and "pids" in own:
                return {c: CGROUP_FS / c / own[c].lstrip("/") for c in ("memory", "pids")}, False
            return None
        if (CGROUP_FS / "cgroup.controllers").is_file() and "" in own:
            parent = CGROUP_FS / own[""].lstrip("/")
            try:
                enabled = (parent / "cgroup.subtree_control").read_text().split()
            except OSError:
                return None
            if "memory" in enabled and "pids" in enabled:
                return {"": parent}, True
        return None

    @classmethod
    def available(cls) -> bool:
        """Whether a nested cgroup can be made here (writable parents)."""
        targets = cls._targets()
        return targets is not None and all(os.access(p, os.W_OK) for p in targets[0].values())

    @classmethod
    def try_create(cls, *, memory_mb: int, pids: int) -> Cgroup | None:
        """A new cgroup with the limits, or None when cgroups cannot be used."""
        targets = cls._targets()
        if targets is None:
            return None
        parents, v2 = targets
        name = f"k2lsp-{uuid.uuid4().hex[:12]}"
        made: dict[str, Path] = {}
        try:
            for ctl, parent in parents.items():
                path = parent / name
                path.mkdir()
                made[ctl] = path
            group = cls(made, v2)
            group._limit(memory_mb * 1024 * 1024, pids)
            return group
        except OSError:
            cls(made, v2).remove()
            return None

    def _limit(self, mem: int, pids: int) -> None:
        if self.v2:
            d = self.dirs[""]
            (d / "memory.max").write_text(str(mem))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(pids))
            return
        (self.dirs["memory"] / "memory.limit_in_bytes").write_text(str(mem))
        with contextlib.suppress(OSError):
            (self.dirs["memory"] / "memory.memsw.limit_in_bytes").write_text(str(mem))
        (self.dirs["pids"] / "pids.max").write_text(str(pids))

    def join(self, pid: int) -> None:
        """Move `pid` into this cgroup (called in the child before exec)."""
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text(str(pid))

    def limits_hit(self) -> list[str]:
        """Which limits the command ran into: 'memory', 'pids'."""
        hits = []
        if self.v2:
            d = self.dirs[""]
            if _counter(d / "memory.events", "oom_kill"):
                hits.append("memory")
            if _counter(d / "pids.events", "max"):
                hits.append("pids")
            return hits
        if _counter(self.dirs["memory"] / "memory.oom_control", "oom_kill"):
            hits.append("memory")
        if _counter(self.dirs["pids"] / "pids.events", "max"):
            hits.append("pids")
        return hits

    def remove(self) -> None:
        """Delete the cgroup folders (after every process in them is gone)."""
        for d in self.dirs.values():
            for _ in range(500):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
