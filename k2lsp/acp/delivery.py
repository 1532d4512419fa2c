"""Deliver a finished turn's change set through the ACP client.

The user is asked first (`session/request_permission` with the whole diff, unless they chose
"always" earlier in the session). Plain text edits then go through the client's
`fs/write_text_file` when it offers it, so they land in its buffers (and its undo): each file
is merged three-way against what the client's buffer holds now (`fs/read_text_file`), and a
single conflict means nothing is written and the patch is saved. Deletions, renames, binary
files and clients without fs methods go through the headless `apply` delivery (checkpointed,
merged the same way, undoable with `k2lsp undo`). Added secrets refuse the delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acp import helpers

from k2lsp.errors import Outcome
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.runs.merge import merge3

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
    planned: list[tuple[FileChange, str]] = []
    conflicts: list[str] = []
    for fc in changes.files:
        path = str(root / fc.path)
        if not (root / fc.path).resolve().is_relative_to(root.resolve()):
            conflicts.append(f"{fc.path} (it leads outside your folder)")
            continue
        ours = await read(path) if read is not None else _disk(root / fc.path)
        theirs = fc.new_text or ""
        base = fc.old_text
        if ours == base or ours == theirs or (ours is None and base is None):
            planned.append((fc, theirs))
        elif base is None or ours is None:
            conflicts.append(fc.path)
        else:
            merged, conflicted = await asyncio.to_thread(merge3, base, ours, theirs)
            if conflicted:
                conflicts.append(fc.path)
            else:
                planned.append((fc, merged))
    if conflicts:
        patch = await asyncio.to_thread(save_patch, run_copy, changes)
        return Landing(
            "conflict",
            f"Not applied: you edited the same lines of {', '.join(conflicts)} meanwhile. "
            f"Nothing was written; the patch is saved in {patch}.",
            Outcome.EDIT_CONFLICT,
        )
    for fc, text in planned:
        await write(str(root / fc.path), text)
    paths = [fc.path for fc, _ in planned]
    return Landing("applied", f"Applied to {', '.join(paths)}.", files=paths)


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
