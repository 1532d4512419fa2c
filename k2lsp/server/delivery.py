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

from k2lsp.errors import EditConflict, Outcome
from k2lsp.redact import redact
from k2lsp.runs.changes import ChangeSet, inverse
from k2lsp.server import landing, protocol, review
from k2lsp.server.config import state_dir
from k2lsp.server.edits import Plan, plan_delivery
from k2lsp.server.failure import edit_label, full_text, run_failure
from k2lsp.server.send import apply_plan, send

if TYPE_CHECKING:
    from k2lsp.agent.session import RunResult
    from k2lsp.server.app import K2LanguageServer
    from k2lsp.server.runs import Run

log = logging.getLogger(__name__)
_DELIVERABLE = (Outcome.SUCCESS, Outcome.TESTS_FAILED)


async def deliver(ls: K2LanguageServer, run: Run, result: RunResult) -> RunResult:
    """Apply `result.changes` in the editor (or report why not); returns the final result."""
    run.usage, run.steps = result.usage, max(run.steps, result.steps)
    changes = result.changes
    if not changes and result.outcome not in _DELIVERABLE:
        report(ls, run, "failed", result.summary, [], outcome=result.outcome.value)
        return result
    if run.request.read_only or not changes:
        answer = result.summary.strip()
        if len(answer) > 500:
            answer = answer[:500] + f"… (the whole answer is in {full_text(run, result)})"
        report(ls, run, "nothing", f"K2: {answer}" if answer else "K2 finished; no change.", [])
        return result
    from k2lsp.runs.secrets import find_secrets

    found = await asyncio.to_thread(find_secrets, changes, result.run_copy)
    if found:
        return _refuse_secrets(ls, run, result, found)
    if result.outcome not in _DELIVERABLE:
        patch = await save_patch(ls, run, result)
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
    if ls.editor_config.options.preview and review.wanted(ls):
        return await review.review(ls, run, result)  # decided per hunk in the editor
    if ls.editor_config.options.preview and not await preview(ls, run, changes):
        patch = await save_patch(ls, run, result)
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


def _refuse_secrets(
    ls: K2LanguageServer, run: Run, result: RunResult, found: list[str]
) -> RunResult:
    """The change set adds a secret: apply nothing, save no patch, keep the run copy."""
    copy, result.run_copy = result.run_copy, None  # not cleaned up: the user reviews it
    where = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    kept = f" The run copy is kept at {copy.root}." if copy is not None else ""
    report(
        ls,
        run,
        "refused",
        f"K2 changes not applied: they add what looks like a secret (an API key in use or a "
        f"credential) at {where}. Nothing was written or saved.{kept}",
        result.changes.paths(),
    )
    result.outcome = Outcome.USAGE_ERROR
    return result


async def _apply(ls: K2LanguageServer, run: Run, result: RunResult) -> RunResult:
    """Send the change set (`k2lsp.server.send`: plan, checkpoint, send, check, plan again)."""
    root = Path(run.request.repo).resolve()
    changes = result.changes
    label = f"k2lsp run {run.id}: {' '.join(redact(run.request.task).split())[:60]}"
    sent = await send(ls, root, changes, label, edit_label(run.title), ls.run_settings().state_dir)
    if sent.landed and sent.plan is not None:
        return _applied(ls, run, result, sent.plan)
    if sent.kind == "conflict" and sent.plan is not None:
        return await _conflict(ls, run, result, sent.plan)
    if sent.kind == "partly":
        return await _partly(ls, run, result, sent.missing)
    patch = await save_patch(ls, run, result)
    if sent.kind == "checkpoint":
        msg = (
            f"K2: could not record the undo checkpoint ({sent.reason}), so nothing was "
            f"applied. The patch is saved in {patch}"
        )
        return _refuse(ls, run, result, "conflict", msg, changes.paths(), patch)
    if sent.kind == "refused":
        done = (
            "the editor applied its part of the edit (use the editor's undo for it)"
            if sent.partial
            else "nothing applied"
        )
        msg = f"K2: the edit was refused ({sent.reason}); {done}. Patch saved in {patch}"
        return _refuse(ls, run, result, "refused", msg, changes.paths(), patch)
    msg = (
        f"K2: {', '.join(changes.paths())} kept changing in the editor while the run's changes "
        f"were delivered; nothing was applied. The patch is saved in {patch}"
    )
    return _refuse(ls, run, result, "conflict", msg, changes.paths(), patch)


async def _conflict(ls: K2LanguageServer, run: Run, result: RunResult, plan: Plan) -> RunResult:
    patch = await save_patch(ls, run, result)
    merge = [p for p in plan.conflicts if p not in plan.reasons]
    parts = [f"{p}: {why}" for p, why in plan.reasons.items()]
    if merge:
        parts.insert(
            0,
            f"{', '.join(merge)} changed in the editor and the run's changes could not be merged",
        )
    msg = f"K2: {'; '.join(parts)}; nothing was applied. The patch is saved in {patch}"
    return _refuse(ls, run, result, "conflict", msg, plan.conflicts, patch)


def _refuse(
    ls: K2LanguageServer,
    run: Run,
    result: RunResult,
    status: str,
    msg: str,
    paths: list[str],
    patch: Path,
) -> RunResult:
    result.outcome, result.summary = Outcome.EDIT_CONFLICT, msg
    report(ls, run, status, msg, paths, patch=patch)
    return result


async def _partly(
    ls: K2LanguageServer, run: Run, result: RunResult, missing: list[str]
) -> RunResult:
    patch = await save_patch(ls, run, result)
    msg = (
        f"K2: the editor reported the edit as applied, but {', '.join(missing)} does not hold "
        f"it; use the editor's undo for any part that landed. Patch saved in {patch}"
    )
    return _refuse(ls, run, result, "refused", msg, missing, patch)


def _applied(ls: K2LanguageServer, run: Run, result: RunResult, plan: Plan) -> RunResult:
    run.before, run.after = plan.before, plan.after
    status = "merged" if plan.merged else "applied"
    note = f" (rebased over your edits to {', '.join(plan.merged)})" if plan.merged else ""
    if plan.skipped:
        note += f"; binary files not delivered: {', '.join(plan.skipped)}"
    answer = " ".join(result.summary.split())
    if len(answer) > 300:
        answer = answer[:300] + f"… (all of it in {full_text(run, result)})"
    files = ", ".join(sorted(plan.after)[:5]) + (" …" if len(plan.after) > 5 else "")
    message = f"K2 changed {len(plan.after)} file(s) ({files}){note}." + (
        f" {answer}" if answer else ""
    )
    report(ls, run, status, message, [*plan.after])
    return result


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
    await landing.settle(ls)
    plan = plan_delivery(ls, root, inverse(run.before, run.after))
    if plan.conflicts:
        why = "".join(f"; {p}: {r}" for p, r in plan.reasons.items())
        raise EditConflict(
            f"{', '.join(plan.conflicts)} changed since K2 run {run.id} was "
            f"applied in a way that cannot be unwound; use the editor's undo{why}"
        )
    ok, reason, partial = await apply_plan(ls, root, plan, edit_label(f"undo {run.id}"))
    if not ok:
        part = " (the editor undid its part)" if partial else ""
        raise EditConflict(f"the undo edit was refused ({reason}){part}")
    run.undone = True
    return sorted(set(plan.before) | set(plan.after))


async def save_patch(ls: K2LanguageServer, run: Run, result: RunResult) -> Path:
    """Save the run's change set as a patch, the CLI's way (`k2lsp.runs.patchfile`); its path."""
    from k2lsp.runs import patchfile

    rc = result.run_copy
    where = rc.state_dir if rc is not None else state_dir(ls.run_settings())
    text = await asyncio.to_thread(patchfile.patch_text, rc, result.changes)
    return await asyncio.to_thread(patchfile.save_patch, text, where, run.id)


def report(
    ls: K2LanguageServer,
    run: Run,
    status: str,
    message: str,
    paths: list[str],
    *,
    patch: Path | None = None,
    diff_uri: str = "",
    outcome: str = "",
) -> None:
    """Tell the user (showMessage, transcript, k2lsp/delivery) what became of the changes;
    status `failed`: the run failed before it changed anything (k2lsp.server.failure)."""
    run.delivery = "nothing" if status == "failed" else status
    if run.stream is not None:
        run.stream.flush()  # every earlier event reaches the editor before the verdict
    kind = (
        types.MessageType.Warning
        if status in ("conflict", "refused", "skipped")
        else types.MessageType.Info
    )
    if status == "failed":
        kind, message = run_failure(outcome, message, run.base_url)
        status = "nothing"
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
