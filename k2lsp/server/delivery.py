"""Deliver a finished run's change set through the editor: optional preview, checkpoint,
`workspace/applyEdit`, conflict and refusal handling (patch saved), and `k2lsp.undo`.

`deliver` is the run's `finish` hook: it may change the outcome to `edit_conflict`, which
then appears in the run's `run_finished` event.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.agent.events import Outcome
from k2lsp.changes import ChangeSet
from k2lsp.errors import EditConflict, K2lspError
from k2lsp.server import protocol
from k2lsp.server.config import state_dir
from k2lsp.server.edits import Plan, inverse, plan_delivery, write_disk

if TYPE_CHECKING:
    from k2lsp.run import RunResult
    from k2lsp.server.app import K2LanguageServer
    from k2lsp.server.runs import Run

log = logging.getLogger(__name__)
_DELIVERABLE = (Outcome.SUCCESS, Outcome.TESTS_FAILED)


async def deliver(ls: K2LanguageServer, run: Run, result: RunResult) -> RunResult:
    """Apply `result.changes` in the editor (or report why not); returns the final result."""
    run.usage, run.steps = result.usage, max(run.steps, result.steps)
    changes = result.changes
    if run.request.read_only or not changes:
        answer = result.summary.strip()
        if len(answer) > 500:
            answer = answer[:500] + "… (the whole answer is in the transcript)"
        report(ls, run, "nothing", f"K2: {answer}" if answer else "K2 finished; no change.", [])
        return result
    if result.outcome not in _DELIVERABLE:
        patch = save_patch(ls, run, changes)
        report(
            ls,
            run,
            "skipped",
            f"K2 run ended ({result.outcome.value}); nothing applied. "
            f"Its partial changes are saved in {patch}",
            changes.paths(),
            patch=patch,
        )
        return result
    if ls.editor_config.options.preview and not await preview(ls, run, changes):
        patch = save_patch(ls, run, changes)
        report(
            ls,
            run,
            "rejected",
            f"K2 changes discarded (patch kept in {patch}).",
            changes.paths(),
            patch=patch,
        )
        return result
    run.state = "delivering"
    return await _apply(ls, run, result)


async def _apply(ls: K2LanguageServer, run: Run, result: RunResult) -> RunResult:
    root = Path(run.request.repo).resolve()
    changes = result.changes
    plan = plan_delivery(ls, root, changes)
    if plan.conflicts:
        patch = save_patch(ls, run, changes)
        msg = (
            f"K2: {', '.join(plan.conflicts)} changed in the editor and the run's changes "
            f"could not be merged; nothing was applied. The patch is saved in {patch}"
        )
        result.outcome, result.summary = Outcome.EDIT_CONFLICT, msg
        report(ls, run, "conflict", msg, plan.conflicts, patch=patch)
        return result
    label = f"k2lsp run {run.id}: {run.request.task[:60]}"
    await asyncio.to_thread(_checkpoint, root, plan, label, ls.run_settings().state_dir)
    ok, reason = await apply_plan(ls, root, plan, f"K2: {run.title}")
    if not ok:
        patch = save_patch(ls, run, changes)
        msg = f"K2: the editor refused the edit ({reason}); nothing applied. Patch saved in {patch}"
        result.outcome, result.summary = Outcome.EDIT_CONFLICT, msg
        report(ls, run, "refused", msg, changes.paths(), patch=patch)
        return result
    run.before, run.after = plan.before, plan.after
    status = "merged" if plan.merged else "applied"
    note = f" (rebased over your edits to {', '.join(plan.merged)})" if plan.merged else ""
    if plan.skipped:
        note += f"; binary files not delivered: {', '.join(plan.skipped)}"
    report(ls, run, status, f"K2 changed {len(plan.after)} file(s){note}.", [*plan.after])
    return result


async def apply_plan(ls: K2LanguageServer, root: Path, plan: Plan, label: str) -> tuple[bool, str]:
    """Send the plan's WorkspaceEdit, then the fallback disk operations; (applied, reason)."""
    if plan.edit is not None:
        caps = ls.client_capabilities
        if not (caps and caps.workspace and caps.workspace.apply_edit):
            return False, "the client does not support workspace/applyEdit"
        try:
            res = await ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=plan.edit, label=label)
            )
        except Exception as exc:
            return False, f"workspace/applyEdit failed: {exc}"
        if not res.applied:
            return False, res.failure_reason or "no reason given"
    if plan.disk_writes:
        await asyncio.to_thread(write_disk, root, plan.disk_writes)
    return True, ""


async def preview(ls: K2LanguageServer, run: Run, changes: ChangeSet) -> bool:
    """Show the diff and wait for k2lsp.accept / k2lsp.reject (or the message buttons)."""
    path = state_dir(ls.run_settings()) / "previews" / f"{run.id}.diff"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(changes.diff(), encoding="utf-8")
    run.state, run.preview = "preview", asyncio.get_running_loop().create_future()
    caps = ls.client_capabilities
    window = caps.window if caps else None
    if window is not None and window.show_document is not None and window.show_document.support:
        ls.window_show_document(types.ShowDocumentParams(uri=path.as_uri(), take_focus=True))
    report(
        ls,
        run,
        "preview",
        f"K2 changed {len(changes.files)} file(s); review {path} then "
        f"run {protocol.CMD_ACCEPT} or {protocol.CMD_REJECT}.",
        changes.paths(),
        diff_uri=path.as_uri(),
    )
    asked = asyncio.create_task(_ask_preview(ls, run, len(changes.files)))
    try:
        return await run.preview
    finally:
        asked.cancel()
        run.state = "running"


async def _ask_preview(ls: K2LanguageServer, run: Run, n: int) -> None:
    params = types.ShowMessageRequestParams(
        type=types.MessageType.Info,
        message=f"K2 run {run.id} changed {n} file(s). Apply?",
        actions=[
            types.MessageActionItem(title=protocol.PREVIEW_ACCEPT),
            types.MessageActionItem(title=protocol.PREVIEW_REJECT),
        ],
    )
    try:
        answer = await ls.window_show_message_request_async(params)
    except Exception as exc:
        log.info("preview question not answered: %s", exc)
        return
    if answer is not None and run.preview is not None and not run.preview.done():
        run.preview.set_result(answer.title == protocol.PREVIEW_ACCEPT)


async def undo(ls: K2LanguageServer, run: Run) -> list[str]:
    """Restore the files `run` delivered, through the editor; EditConflict if they moved on."""
    root = Path(run.request.repo).resolve()
    plan = plan_delivery(ls, root, inverse(run.before, run.after))
    if plan.conflicts:
        raise EditConflict(
            f"{', '.join(plan.conflicts)} changed since K2 run {run.id} was "
            "applied in a way that cannot be unwound; use the editor's undo"
        )
    ok, reason = await apply_plan(ls, root, plan, f"K2: undo {run.id}")
    if not ok:
        raise EditConflict(f"the editor refused the undo edit ({reason})")
    run.undone = True
    return sorted(set(plan.before) | set(plan.after))


def _checkpoint(root: Path, plan: Plan, label: str, state: Path | None) -> None:
    """Record a git checkpoint (before/after bytes) for `k2lsp undo`; delivery goes on without."""
    try:
        from k2lsp.git import record_checkpoint

        record_checkpoint(root, list(plan.before), label, after=dict(plan.after), state_dir=state)
    except (K2lspError, OSError, ImportError, ValueError) as exc:
        log.warning("no checkpoint recorded for %s: %s", root, exc)


def save_patch(ls: K2LanguageServer, run: Run, changes: ChangeSet) -> Path:
    """Write the change set as a unified diff under the state dir; its path."""
    path = state_dir(ls.run_settings()) / "patches" / f"{run.id}.patch"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(changes.diff(), encoding="utf-8")
    return path


def report(
    ls: K2LanguageServer,
    run: Run,
    status: str,
    message: str,
    paths: list[str],
    *,
    patch: Path | None = None,
    diff_uri: str = "",
) -> None:
    """Tell the user (showMessage, transcript, k2lsp/delivery) what became of the changes."""
    run.delivery = status
    if run.stream is not None:
        run.stream.flush()  # every earlier event reaches the editor before the verdict
    kind = (
        types.MessageType.Warning
        if status in ("conflict", "refused", "skipped")
        else types.MessageType.Info
    )
    ls.show(message, kind)
    if run.stream is not None:
        run.stream.append_note(message)
    if ls.wants_stream():
        payload: dict[str, Any] = {
            "runId": run.id,
            "status": status,
            "paths": paths,
            "message": message,
        }
        if patch is not None:
            payload["patchPath"] = str(patch)
        if diff_uri:
            payload["diffUri"] = diff_uri
        ls.protocol.notify(protocol.DELIVERY_NOTIFICATION, payload)
