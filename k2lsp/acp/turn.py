"""One ACP turn as one k2lsp run: build the `RunRequest` from the prompt, run it with the
session's sinks, approvals and MCP tools, deliver in the run's `finish` hook, record the turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from acp import schema

from k2lsp.acp import delivery, store
from k2lsp.acp.prompt import PromptParts
from k2lsp.acp.updates import UpdateMapper
from k2lsp.errors import Outcome, UsageError

if TYPE_CHECKING:
    from k2lsp.acp.session import AcpSession
    from k2lsp.agent.session import RunResult

log = logging.getLogger(__name__)
DELIVERABLE = (Outcome.SUCCESS, Outcome.TESTS_FAILED)


def history(record: store.SessionRecord, limit: int = 6) -> str:
    """Earlier turns of the session, summarised for the next run's context."""
    turns = record.turns[-limit:]
    if not turns:
        return ""
    lines = ["Earlier in this conversation (most recent last):"]
    for turn in turns:
        answer = " ".join(turn.answer.split())[:600]
        lines.append(f"- The user asked: {' '.join(turn.prompt.split())[:400]}")
        lines.append(f"  Outcome: {turn.outcome}. Your answer: {answer or '(none)'}")
    return "\n".join(lines)


def build_request(session: AcpSession, parts: PromptParts) -> Any:
    """The `RunRequest` of a prompt in the session's mode."""
    from k2lsp.acp.session import MODES, PLAN_PREFIX
    from k2lsp.agent.session import RunRequest
    from k2lsp.runs.runcopy import new_run_id

    if not parts.task.strip():
        raise UsageError("the prompt is empty; say what to do")
    mode_id = session.record.mode
    run_mode = MODES.get(mode_id, MODES["code"])[0]
    task = (PLAN_PREFIX if mode_id == "plan" else "") + parts.task
    context = "\n\n".join(x for x in (history(session.record), *parts.context) if x)
    return RunRequest(
        task=task,
        repo=session.root,
        mode=run_mode,
        context=context,
        overlay=dict(parts.overlay),
        run_id=new_run_id(),
        focus_paths=list(parts.focus),
        tools=session.hub.tools() if session.hub is not None else [],
    )


async def run_turn(
    session: AcpSession, parts: PromptParts, settings: Any
) -> tuple[Outcome, schema.Usage | None]:
    """Run the prompt; (outcome, usage of the turn)."""
    from k2lsp.agent.session import execute_run

    for rel in session.touched:  # buffers this session wrote: their text now, saved or not
        if rel not in parts.overlay:
            text = await session.read_buffer(str(session.root / rel))
            if text is not None:
                parts.overlay[rel] = text
    request = build_request(session, parts)
    loop = asyncio.get_running_loop()
    request.state["approve"] = session.approver(loop)
    session.mapper = UpdateMapper(session.root, parts.shown, settings.context_length)
    call_id = f"k2lsp-apply-{request.run_id}"

    async def finish(result: RunResult) -> RunResult:
        if request.read_only or not result.changes or result.outcome not in DELIVERABLE:
            return result
        landed = await delivery.deliver(
            session.root,
            result.changes,
            result.run_copy,
            ask=session.ask,
            call_id=call_id,
            read=session.read_buffer if session.offers("read_text_file") else None,
            write=session.write_buffer if session.offers("write_text_file") else None,
            task=request.task,
        )
        session.say(f"\n\n{landed.message}")
        session.touched += [p for p in landed.files if p not in session.touched]
        if landed.status == "refused":
            result.run_copy = None  # kept for the user to review
        if landed.outcome is not None:
            result.outcome, result.summary = landed.outcome, landed.message
        return result

    async def drive() -> RunResult:
        """The run, then its run copy removed (also when the connection goes away)."""
        result: RunResult | None = None
        try:
            result = await execute_run(request, settings, sinks=[session.sink(loop)], finish=finish)
            return result
        finally:
            copy = result.run_copy if result is not None else None
            if copy is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.to_thread(copy.cleanup))

    session.task = asyncio.create_task(drive(), name=f"k2lsp-acp-run-{request.run_id}")
    try:
        result = await session.task
    except asyncio.CancelledError:
        if not session.task.cancelled():
            raise  # the prompt itself was cancelled (connection gone)
        return Outcome.CANCELLED, None
    if result.outcome not in (*DELIVERABLE, Outcome.CANCELLED, Outcome.NO_CHANGE):
        session.say(f"\n\nk2lsp: the run ended ({result.outcome.value}): {result.summary}")
    await _record(session, parts, result)
    return result.outcome, _usage(result)


async def _record(session: AcpSession, parts: PromptParts, result: RunResult) -> None:
    turn = store.Turn(
        prompt=parts.shown,
        run_id=result.run_id,
        trajectory=str(result.trajectory or ""),
        outcome=result.outcome.value,
        answer=result.summary,
    )
    session.record.turns.append(turn)
    try:
        await asyncio.to_thread(store.save, session.state_dir, session.record)
    except OSError as exc:
        log.warning("could not save session %s: %s", session.id, exc)


def _usage(result: RunResult) -> schema.Usage:
    u = result.usage
    return schema.Usage(
        total_tokens=u.prompt_tokens + u.completion_tokens,
        input_tokens=u.prompt_tokens,
        output_tokens=u.completion_tokens,
        cached_read_tokens=u.cached_tokens,
    )
