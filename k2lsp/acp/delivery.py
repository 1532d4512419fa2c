"""Deliver a finished turn's change set through the ACP client.

The user is asked first (`session/request_permission` with the whole diff, unless they chose
"always" earlier in the session). Plain text edits then go through the client's
`fs/write_text_file` when it offers it, so they land in its buffers (and its undo): each file
is planned by the one delivery planner (`k2lsp.runs.plan`) against what the client's buffer
holds now (`fs/read_text_file`, else the disk): merged three-way over the user's unsaved edits,
and a single conflict means nothing is written and the patch is saved. An undo checkpoint of
the buffers' text is recorded first (`k2lsp undo`), as for every delivery. Deletions, renames,
binary files and clients without fs methods go through the headless `apply` delivery (checkpointed,
merged the same way, undoable with `k2lsp undo`). Added secrets refuse the delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp import helpers

from k2lsp.errors import K2lspError, Outcome
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.runs.plan import Current, Incoming, Step, plan_delivery

ReadFn = Callable[[str], Awaitable[str | None]]  # absolute path -> buffer text (None: absent)
WriteFn = Callable[[str, str], Awaitable[None]]
AskFn = Callable[[str, str, Any], Awaitable[bool]]  # (kind, detail, tool call) -> allowed


@dataclass
class Landing:
    """What delivery did: the outcome change (if any) and one line for the user."""

    status: str  # applied | rejected | conflict | refused | nothing
    message: str
    outcome: Outcome | None = None
    files: list[str] = field(default_factory=list)


def via_client(changes: ChangeSet) -> bool:
    """Can every change go through `fs/write_text_file` (plain text, created or modified)?"""
    return all(_plain(fc) for fc in changes.files)


def _plain(fc: FileChange) -> bool:
    if fc.binary or fc.old_path is not None:
        return False
    if fc.kind == "modified":
        return fc.old_mode == fc.new_mode
    return fc.kind == "created" and fc.new_mode in (None, "100644")


def permission_call(root: Path, changes: ChangeSet, call_id: str) -> Any:
    """The tool call shown with the permission request: every file's diff."""
    content = [
        helpers.tool_diff_content(str(root / fc.path), fc.new_text or "", fc.old_text)
        for fc in changes.files
        if not fc.binary
    ]
    title = f"apply the changes to {len(changes.files)} file(s)"
    return helpers.start_tool_call(call_id, title, kind="edit", status="pending", content=content)


async def deliver(
    root: Path,
    changes: ChangeSet,
    run_copy: Any,
    *,
    ask: AskFn,
    call_id: str,
    read: ReadFn | None,
    write: WriteFn | None,
    task: str,
) -> Landing:
    """Ask, then apply `changes` of `run_copy` to the user's folder `root` (see module doc)."""
    from k2lsp.runs.secrets import find_secrets

    found = await asyncio.to_thread(find_secrets, changes, run_copy)
    if found:
        where = ", ".join(found[:10])
        return Landing(
            "refused",
            f"Not applied: the changes add what looks like a secret at {where}. Nothing was "
            f"written; the run copy is kept at {run_copy.root}.",
            Outcome.USAGE_ERROR,
        )
    detail = f"apply changes to {', '.join(changes.paths()[:20])}"
    if not await ask("apply", detail, permission_call(root, changes, call_id)):
        patch = await asyncio.to_thread(save_patch, run_copy, changes)
        return Landing("rejected", f"Changes not applied (patch kept in {patch}).")
    if write is not None and via_client(changes):
        return await _through_client(root, changes, run_copy, read, write)
    return await asyncio.to_thread(_on_disk, run_copy, changes, task)


async def _through_client(
    root: Path, changes: ChangeSet, run_copy: Any, read: ReadFn | None, write: WriteFn
) -> Landing:
    """Plan the delivery (`k2lsp.runs.plan`) on the client's buffers, then run its steps
    through `fs/write_text_file`; a single conflict writes nothing and saves the patch."""
    current: dict[str, Current] = {}
    for fc in changes.files:
        current[fc.path] = await _current(root, fc.path, read)
    plan = await asyncio.to_thread(
        plan_delivery, [Incoming.of(fc) for fc in changes.files], current
    )
    if plan.conflicts:
        patch = await asyncio.to_thread(save_patch, run_copy, changes)
        what = ", ".join(
            s.path if s.clash else f"{s.path} ({s.reason})" for s in plan.by_action("conflict")
        )
        return Landing(
            "conflict",
            f"Not applied: you edited the same lines of {what} meanwhile. "
            f"Nothing was written; the patch is saved in {patch}.",
            Outcome.EDIT_CONFLICT,
        )
    writes = [s for s in plan.by_action("write", "merge", "create") if s.after is not None]
    failed = await asyncio.to_thread(_checkpoint, root, writes, run_copy)
    if failed:
        patch = await asyncio.to_thread(save_patch, run_copy, changes)
        return Landing(
            "conflict",
            f"Not applied: could not record the undo checkpoint ({failed}). Nothing was "
            f"written; the patch is saved in {patch}.",
            Outcome.EDIT_CONFLICT,
        )
    for step in writes:
        assert step.after is not None
        await write(str(root / step.path), step.after.decode("utf-8", "surrogatepass"))
    paths = [step.path for step in plan.steps]
    return Landing("applied", f"Applied to {', '.join(paths)}.", files=paths)


async def _current(root: Path, rel: str, read: ReadFn | None) -> Current:
    """What the client's buffer (else the disk) holds at `rel` now, for the planner."""
    if not (root / rel).resolve().is_relative_to(root.resolve()):
        return Current(None, refused="it leads outside your folder")
    text = await read(str(root / rel)) if read is not None else _disk(root / rel)
    return Current(None if text is None else text.encode("utf-8", "surrogatepass"))


def _checkpoint(root: Path, writes: list[Step], run_copy: Any) -> str:
    """Record what the client's buffers held before `writes` (for `k2lsp undo`, like every
    delivery); '' when recorded (or nothing to record), else why not."""
    if not writes:
        return ""
    from k2lsp.runs.checkpoint import record

    try:
        record(
            root,
            [s.path for s in writes],
            "k2lsp (ACP): apply the changes",
            before={s.path: s.before for s in writes},
            after={s.path: s.after for s in writes},
            state_dir=getattr(run_copy, "state_dir", None),
        )
    except (K2lspError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return ""


def _on_disk(run_copy: Any, changes: ChangeSet, task: str) -> Landing:
    from k2lsp.runs.git import deliver as deliver_files

    done = deliver_files(run_copy, changes, "apply", task=task)
    if done.outcome is Outcome.SUCCESS:
        return Landing(
            "applied", f"Applied to {', '.join(done.files)} ({done.message}).", None, done.files
        )
    return Landing("conflict", done.message, done.outcome)


def _disk(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def save_patch(run_copy: Any, changes: ChangeSet) -> Path:
    """Save the change set as a patch, the CLI's and the editor's way
    (`k2lsp.runs.patchfile`: <state dir>/patches/<run-id>.patch, private); its path."""
    from k2lsp.runs import patchfile

    text = patchfile.patch_text(run_copy, changes)
    return patchfile.save_patch(text, run_copy.state_dir, run_copy.run_id)
