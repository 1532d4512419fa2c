"""The CLI's side of delivery: the user's files on disk as the planner's `Current`, and a
`DeliveryPlan` carried out on disk through `k2lsp.fs.safefs` (no link is followed on the way).

    plan = plan_on_disk(run_copy, ws, changes)   # k2lsp.runs.plan rules, disk as "ours"
    for w in disk_writes(plan): write_entry(ws, w)

Refusals particular to a working tree (checked here, reported by the planner as conflicts):
a path leading out of the folder, a symlink the run made pointing outside, a folder where a
file goes, a file where a folder is needed. The editor's side is `k2lsp.server.edits`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.errors import PathError
from k2lsp.fs import safefs
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.runs.checkpoint import read_entry
from k2lsp.runs.plan import Current, DeliveryPlan, Incoming, plan_delivery

if TYPE_CHECKING:
    from k2lsp.runs.runcopy import RunCopy
    from k2lsp.runs.workspace import Workspace


@dataclass
class Write:
    """One operation on the user's tree."""

    rel: str
    data: bytes | None  # None = delete
    mode: int | None  # None = keep the existing mode
    ours: bytes | None  # what the file held when planned (re-checked before writing)


def incoming(run_copy: RunCopy, fc: FileChange) -> Incoming:
    """The change with its start read from the run's snapshot and its end from the copy."""
    kind = fc.kind
    base = None if kind == "created" else run_copy.base_bytes(fc.old_path or fc.path)
    if kind == "deleted":
        theirs = None
    elif fc.binary or fc.new_text is None:
        theirs = run_copy.read_bytes(fc.path)
    else:
        theirs = fc.new_text.encode("utf-8")
    return Incoming.of(fc, base=base, theirs=theirs)


def current(path: Path) -> bytes | None:
    """What `path` holds now (a symlink's target for links), None when absent."""
    return read_entry(path)[0]


def _refusal(ws: Workspace, inc: Incoming) -> str:
    """Why the working tree cannot take this change ("" when it can)."""
    try:
        old_abs, new_abs = ws.resolve_entry(inc.source), ws.resolve_entry(inc.path)
    except PathError as exc:
        return str(exc)
    if inc.new_mode == "120000" and inc.theirs is not None:
        target = (new_abs.parent / os.fsdecode(inc.theirs)).resolve()
        if not target.is_relative_to(ws.root):
            return "the run made it a symlink pointing outside your folder"
    in_the_way = [p for p in (old_abs, new_abs) if p.is_dir() and not p.is_symlink()]
    if in_the_way:
        return f"your tree has a folder at {ws.rel(in_the_way[0])}"
    blocking = [d for d in new_abs.parents if d.is_relative_to(ws.root) and d != ws.root]
    blocking = [d for d in blocking if os.path.lexists(d) and not d.is_dir()]
    if blocking:
        return f"your tree has a file at {ws.rel(blocking[-1])} where the run needs a folder"
    return ""


def plan_on_disk(run_copy: RunCopy, ws: Workspace, changes: ChangeSet) -> DeliveryPlan:
    """Plan `changes` against the files in `ws` now."""
    incs = [incoming(run_copy, fc) for fc in changes.files]
    state: dict[str, Current] = {}
    for inc in incs:
        why = _refusal(ws, inc)
        for rel in dict.fromkeys((inc.source, inc.path)):
            if rel in state and (state[rel].refused or not why):
                continue
            data = None if why else current(ws.resolve_entry(rel))
            state[rel] = Current(data, refused=why)
    return plan_delivery(incs, state)


def disk_writes(plan: DeliveryPlan) -> list[Write]:
    """The operations a conflict-free plan needs, skipping files that already hold the result."""
    out: list[Write] = []
    for step in plan.steps:
        if step.action in ("unchanged", "skip", "conflict"):
            continue
        if step.action == "rename" and step.old_path is not None:
            out.append(Write(step.old_path, None, None, step.old_before))
        out.append(Write(step.path, step.after, step.mode, step.before))
    return [w for w in out if w.data != w.ours or w.mode is not None]


def write_entry(ws: Workspace, w: Write) -> None:
    """Carry out one operation (OSError or PathError when the tree does not let it)."""
    path = ws.resolve_entry(w.rel)
    rel = path.relative_to(ws.root).as_posix()
    if w.data is None:
        with contextlib.suppress(FileNotFoundError):
            safefs.unlink(ws.root, rel)
        _prune_empty_dirs(path.parent, ws.root)
        return
    mode = w.mode
    if mode is None:
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(path).st_mode
    if mode is not None and stat.S_ISLNK(mode):
        safefs.write_link(ws.root, rel, os.fsdecode(w.data))
        return
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"{path} is a folder; k2lsp will not replace it with a file")
    safefs.write_bytes(ws.root, rel, w.data, None if mode is None else stat.S_IMODE(mode))


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
