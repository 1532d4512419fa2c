"""Send a change set through the editor: the one retry/verify loop of every editor delivery.

A run's delivery (`k2lsp.server.delivery`), an accepted hunk (`k2lsp.server.review`) and a
saved patch applied later (`k2lsp.server.patches`) all land here:

    sent = await send(ls, root, changes, label, title, state_dir)
    sent.kind   # "" landed | conflict | checkpoint | partly | refused | moving

Each attempt plans on the editor's text now (`k2lsp.server.edits`, over the one planner
`k2lsp.runs.plan`), records an undo checkpoint (so `k2lsp undo` takes the change back like any
delivery; none recorded means nothing is sent), sends the versioned `WorkspaceEdit` plus the
fallback disk operations, and checks the edit landed. When the user typed meanwhile the
checkpoint is discarded and the change planned again; it is never written over text that
moved on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from k2lsp.errors import K2lspError, PathError
from k2lsp.runs.changes import ChangeSet
from k2lsp.runs.fallback import check_disk, write_disk
from k2lsp.server import landing
from k2lsp.server.edits import Plan, plan_delivery

if TYPE_CHECKING:
    from k2lsp.server.app import K2LanguageServer

log = logging.getLogger(__name__)


@dataclass
class Sent:
    """What became of a change set sent through the editor."""

    plan: Plan | None  # the last plan made (None: none)
    kind: str = ""  # "" landed | conflict | checkpoint | partly | refused | moving
    reason: str = ""  # checkpoint / refused: why
    partial: bool = False  # refused: the editor applied its part, a disk operation failed
    missing: list[str] = field(default_factory=list)  # partly: paths that do not hold it

    @property
    def landed(self) -> bool:
        """Did the whole change land (and its checkpoint stay recorded)?"""
        return self.kind == "" and self.plan is not None


async def send(
    ls: K2LanguageServer,
    root: Path,
    changes: ChangeSet,
    label: str,
    title: str,
    state: Path | None,
) -> Sent:
    """Plan, checkpoint (`label`), send (`title`) and check `changes`; plan again when the
    user's text moved underneath (see the module doc)."""
    plan: Plan | None = None
    for _attempt in range(landing.ATTEMPTS):
        await landing.settle(ls)
        plan = plan_delivery(ls, root, changes)
        if plan.conflicts:
            return Sent(plan, "conflict")
        cp_id, failed = await asyncio.to_thread(_checkpoint, root, plan, label, state)
        if failed:
            return Sent(plan, "checkpoint", failed)
        if landing.moved(ls, plan):  # typed while the checkpoint was written: plan again
            await asyncio.to_thread(_discard, root, cp_id, state)
            continue
        landing.watch(ls, plan)
        try:
            ok, reason, partial = await apply_plan(ls, root, plan, title)
            missing = await landing.verify(ls, root, plan) if ok else []
        finally:
            landing.unwatch(ls, plan)
        if ok:
            if not missing:
                return Sent(plan)
            if set(missing) != set(landing.edited(plan)) or not landing.moved(ls, plan):
                return Sent(plan, "partly", missing=missing)
            await asyncio.to_thread(_discard, root, cp_id, state)
            continue  # the editor skipped the whole edit (its buffer moved on): plan again
        if not partial and await landing.moved_soon(ls, plan):
            await asyncio.to_thread(_discard, root, cp_id, state)
            continue  # refused because the user typed meanwhile: plan again
        if not partial:  # nothing landed: a live checkpoint would make `k2lsp undo` pick it
            await asyncio.to_thread(_discard, root, cp_id, state)
        return Sent(plan, "refused", reason, partial)
    return Sent(plan, "moving")


async def apply_plan(
    ls: K2LanguageServer, root: Path, plan: Plan, label: str
) -> tuple[bool, str, bool]:
    """Send the plan's WorkspaceEdit, then the fallback disk operations.

    (applied, reason, partial): partial when the editor applied its part but a disk operation
    was then refused. The disk operations are checked before the edit is sent.
    """
    if plan.disk_writes:
        try:
            await asyncio.to_thread(check_disk, root, plan.disk_writes, plan.before)
        except (PathError, OSError) as exc:
            return False, str(exc), False
    if plan.edit is not None:
        caps = ls.client_capabilities
        if not (caps and caps.workspace and caps.workspace.apply_edit):
            return False, "the client does not support workspace/applyEdit", False
        try:
            res = await ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=plan.edit, label=label)
            )
        except Exception as exc:
            return False, f"workspace/applyEdit failed: {exc}", False
        if not res.applied:
            return False, res.failure_reason or "no reason given", False
    if plan.disk_writes:
        try:
            await asyncio.to_thread(write_disk, root, plan.disk_writes, plan.before)
        except (PathError, OSError) as exc:
            return False, str(exc), plan.edit is not None
    return True, "", False


def _checkpoint(root: Path, plan: Plan, label: str, state: Path | None) -> tuple[str, str]:
    """Record a checkpoint for `k2lsp undo`: (its id, ''), else ('', why not) and then nothing
    is applied.

    The "before" content is what the plan was computed against (open buffers included), so
    undo gives back the text the user had, not an older disk version.
    """
    try:
        from k2lsp.runs.git import record_checkpoint

        cp_id = record_checkpoint(
            root,
            list(plan.before),
            label,
            before=dict(plan.before),
            after=dict(plan.after),
            state_dir=state,
        )
    except (K2lspError, OSError, ImportError, ValueError) as exc:
        log.warning("no checkpoint recorded for %s: %s", root, exc)
        return "", str(exc) or type(exc).__name__
    return cp_id, ""


def _discard(root: Path, cp_id: str, state: Path | None) -> None:
    """Forget the checkpoint of a delivery the editor refused (nothing was written)."""
    from k2lsp.runs.checkpoint import discard

    try:
        discard(root, cp_id, state_dir=state)
    except (K2lspError, OSError) as exc:
        log.warning("could not discard checkpoint %s of %s: %s", cp_id, root, exc)
