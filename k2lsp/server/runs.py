"""The registry of runs: each run is an asyncio task with an id, a stream and its totals.

`launch` starts a run and returns at once; the task drives `k2lsp.agent.session.execute_run`,
delivers
through `k2lsp.server.delivery` (as the run's `finish` hook, so the final outcome is in the
event stream) and cleans the run copy up. Cancelling the task (progress cancel or
`k2lsp.cancel`) ends the run as `cancelled` with nothing applied.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.agent.events import Event
from k2lsp.errors import Outcome
from k2lsp.model.types import Usage

if TYPE_CHECKING:
    from k2lsp.agent.session import RunRequest, RunResult
    from k2lsp.server.app import K2LanguageServer
    from k2lsp.server.stream import RunStream

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One run as the server tracks it."""

    id: str
    request: RunRequest
    title: str
    stream: RunStream | None = None
    task: asyncio.Task[None] | None = None
    state: str = "running"  # running | preview | delivering | finished | cancelled
    outcome: str = ""
    delivery: str = ""
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    allowed: set[str] = field(default_factory=set)  # approval kinds allowed for this run
    preview: asyncio.Future[bool] | None = None
    before: dict[str, str | None] = field(default_factory=dict)  # for k2lsp.undo
    after: dict[str, str | None] = field(default_factory=dict)
    undone: bool = False
    conversation: str = ""  # the conversation this run is a turn of (k2lsp.server.chat)
    kept: bool = False  # its conversation was kept for a follow-up
    settled: bool = False  # its run copy was parked or removed (a follow-up may start)
    base_url: str = ""  # the model host of the run (shown when it fails; never the key)
    heavy: Any = None  # a heavy run's HeavyOutcome, kept for k2lsp.takeCandidate (latest only)

    def info(self) -> dict[str, Any]:
        """The `protocol.RunInfo` of this run."""
        return {
            "runId": self.id,
            "mode": self.request.mode,
            "task": self.request.task[:200],
            "state": self.state,
            "outcome": self.outcome,
            "delivery": self.delivery,
            "steps": self.steps,
            "promptTokens": self.usage.prompt_tokens,
            "cachedTokens": self.usage.cached_tokens,
            "completionTokens": self.usage.completion_tokens,
            "costUsd": round(self.usage.cost_usd, 6),
            "conversationId": self.conversation
            if self.kept or self.state in ("running", "preview")
            else "",
        }

    def observe(self, event: Event) -> None:
        """Track steps and usage from the run's own events."""
        d = event.data
        if event.type == "status":
            self.steps = max(self.steps, int(d.get("step") or 0))
        elif event.type == "usage":
            self.usage = Usage(
                int(d.get("total_prompt_tokens") or 0),
                int(d.get("total_cached_tokens") or 0),
                int(d.get("total_completion_tokens") or 0),
                float(d.get("total_cost_usd") or 0.0),
            )


class RunRegistry:
    """All runs of this server session, in start order."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}

    def add(self, run: Run) -> None:
        """Register a run."""
        self.runs[run.id] = run

    def get(self, run_id: str) -> Run | None:
        """The run called `run_id`."""
        return self.runs.get(run_id)

    def active(self) -> list[Run]:
        """Runs still thinking, waiting in preview or delivering."""
        return [r for r in self.runs.values() if r.state in ("running", "preview", "delivering")]

    def by_token(self, token: Any) -> Run | None:
        """The run whose progress token is `token`."""
        for run in self.runs.values():
            if run.stream is not None and f"k2lsp-{run.id}" == str(token):
                return run
        return None

    def cancel(self, run: Run) -> bool:
        """Cancel a run still thinking (or waiting in preview); False once it is delivering."""
        if run.task is None or run.task.done() or run.state == "delivering":
            return False
        if run.preview is not None and not run.preview.done():
            run.preview.set_result(False)  # a preview or review ends; nothing more is applied
        run.task.cancel()
        return True

    def last_delivered(self) -> Run | None:
        """The most recent run whose change set was applied and not yet undone."""
        for run in reversed(list(self.runs.values())):
            if run.delivery in ("applied", "merged") and not run.undone:
                return run
        return None

    def totals(self) -> dict[str, Any]:
        """The `protocol.StatusResult` of the session."""
        total = Usage()
        for run in self.runs.values():
            total += run.usage
        return {
            "runs": [r.info() for r in self.runs.values()],
            "active": len(self.active()),
            "promptTokens": total.prompt_tokens,
            "cachedTokens": total.cached_tokens,
            "completionTokens": total.completion_tokens,
            "costUsd": round(total.cost_usd, 6),
        }


async def launch(ls: K2LanguageServer, request: RunRequest, title: str, drive: Any = None) -> Run:
    """Create the run, its stream and its task (`drive`, default `_drive`: one agent run;
    `k2lsp.server.heavy.heavy_driver`: heavy mode); returns without waiting for the model."""
    from k2lsp.server.config import state_dir
    from k2lsp.server.progress import Limits
    from k2lsp.server.stream import RunStream

    settings = ls.run_settings()
    assert request.run_id is not None
    keeps = int(getattr(settings, "keep_conversations", 1) or 0) > 0
    # one agent run keeps its conversation; heavy mode's candidates keep none
    conversation = request.conversation or (request.run_id if keeps and drive is None else "")
    run = Run(
        request.run_id,
        request,
        title,
        conversation=conversation,
        base_url=str(settings.base_url or ""),
    )
    opts = ls.editor_config.options
    transcript = (state_dir(settings) / "transcripts" / f"{run.id}.md") if opts.transcript else None
    observers = [run.observe, lambda ev: ls.on_event(run, ev)]
    run.stream = RunStream(
        ls,
        run.id,
        title=title,
        notify=ls.wants_stream(),
        log_reasoning=opts.log_reasoning,
        transcript=transcript,
        observers=observers,
        limits=Limits.from_settings(settings),
    )
    request.state["approve"] = ls.approver(run)
    ls.runs.add(run)
    await run.stream.open(request.task)
    body = (drive or _drive)(ls, run, settings)
    run.task = asyncio.create_task(body, name=f"k2lsp-run-{run.id}")
    return run


def ended_by(ls: K2LanguageServer, run: Run, exc: BaseException, what: str = "run") -> None:
    """Record how a run whose task raised `exc` ended and tell the user: cancelled (nothing
    to show), a k2lsp error (a configuration problem raised before the run started: its
    message and fix), or an internal error (logged with its traceback). Call it from the
    `except` block, so the traceback is the one being handled."""
    from k2lsp.errors import K2lspError
    from k2lsp.server.failure import run_failure

    if isinstance(exc, asyncio.CancelledError):
        _synthetic_end(run, Outcome.CANCELLED, "the run was cancelled; nothing was delivered")
    elif isinstance(exc, K2lspError):
        _synthetic_end(run, exc.outcome, str(exc))
        kind, text = run_failure(exc.outcome.value, str(exc), run.base_url)
        ls.show(text, kind)
    else:
        log.exception("%s %s failed", what, run.id)
        _synthetic_end(run, Outcome.PROVIDER_ERROR, f"internal error: {exc}")
        ls.show(f"K2: the {what} failed with an internal error: {exc}", types.MessageType.Error)


async def _drive(ls: K2LanguageServer, run: Run, settings: Any) -> None:
    """The run's task: execute, deliver in the finish hook, report, clean up."""
    from k2lsp.agent.session import execute_run
    from k2lsp.server.delivery import deliver

    assert run.stream is not None
    result: RunResult | None = None

    settled: list[bool] = []

    async def finish(res: RunResult) -> RunResult:
        res = await deliver(ls, run, res)
        settled.append(await _settle(ls, run, res))  # before run_finished: a follow-up may come
        return res

    try:
        result = await execute_run(run.request, settings, sinks=[run.stream.sink], finish=finish)
        run.outcome = result.outcome.value
        run.usage, run.steps = result.usage, max(run.steps, result.steps)
    except (asyncio.CancelledError, Exception) as exc:
        ended_by(ls, run, exc)
    finally:
        if run.outcome == Outcome.CANCELLED.value:
            run.state = "cancelled"
        elif run.state != "cancelled":
            run.state = "finished"
        if not run.delivery:
            run.delivery = "skipped"
        run.stream.close(f"{run.outcome}: {run.delivery}")
        if not settled:
            await _settle(ls, run, result)


async def _settle(ls: K2LanguageServer, run: Run, result: RunResult | None) -> bool:
    """Keep the run's conversation or remove its run copy (never raises)."""
    from k2lsp.server.chat import settle_run

    try:
        await asyncio.shield(asyncio.to_thread(settle_run, ls, run, result))
    except Exception:  # keeping or removing the copy never changes how the run ended
        log.exception("run %s: could not keep or remove its run copy", run.id)
    run.settled = True
    return True


def _synthetic_end(run: Run, outcome: Outcome, summary: str) -> None:
    """Close the event stream ourselves when execute_run could not."""
    run.outcome = outcome.value
    assert run.stream is not None
    seq = run.stream.last_seq + 1
    run.stream.sink(
        Event(
            "run_finished",
            run.id,
            seq,
            {"outcome": outcome.value, "exit_code": outcome.exit_code, "summary": summary},
        )
    )
