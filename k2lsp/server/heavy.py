"""Heavy mode in the language server: a run command carrying `"heavy": N` runs N candidates
(`k2lsp.agent.heavy`) and delivers the winner through the normal delivery (preview, merge,
undo); with the option `heavyCandidates: N` (2–16) every editing code action also comes as a
"… (K2 heavy ×N)" variant.

The editor's stream shows the heavy run's own events: candidates' progress arrives as
`status` events (phase `candidate`), then each `candidate_finished` with its evidence and cost,
the judge's verdicts and `heavy_selected`. Every run copy is removed when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import types

from k2lsp.agent.events import Event
from k2lsp.errors import K2lspError, Outcome, UsageError
from k2lsp.server import protocol
from k2lsp.server.failure import command_error

if TYPE_CHECKING:
    from k2lsp.server.app import K2LanguageServer
    from k2lsp.server.runs import Run

log = logging.getLogger(__name__)
EDITING_COMMANDS = (
    protocol.CMD_TASK,
    protocol.CMD_FIX_DIAGNOSTIC,
    protocol.CMD_REFACTOR,
    protocol.CMD_WRITE_TESTS,
    protocol.CMD_FIX_FAILING_TEST,
)
Drive = Callable[["K2LanguageServer", "Run", Any], Coroutine[Any, Any, None]]


def heavy_count(command: str, args: dict[str, Any]) -> int:
    """The `heavy` argument of a run command (0: a normal run); UsageError when invalid."""
    value = args.get("heavy")
    if value in (None, 0, False):
        return 0
    if command not in EDITING_COMMANDS:
        raise UsageError(f"heavy mode is for editing commands, not {command}")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
        raise UsageError(f'"heavy" takes a number of candidates from 1 to 16, not {value!r}')
    return value


def with_heavy(actions: list[types.CodeAction], n: int) -> list[types.CodeAction]:
    """`actions` plus a "(K2 heavy ×n)" variant of each editing action (none when n < 2)."""
    if n < 2:
        return actions
    out = list(actions)
    for action in actions:
        cmd = action.command
        if cmd is None or cmd.command not in EDITING_COMMANDS or not cmd.arguments:
            continue
        first = cmd.arguments[0]
        if not isinstance(first, dict):
            continue
        title = f"{action.title} (K2 heavy ×{n})"
        heavy = attrs.evolve(cmd, title=title, arguments=[{**first, "heavy": n}])
        out.append(attrs.evolve(action, title=title, command=heavy))
    return out


def heavy_driver(n: int) -> Drive:
    """The task body of a heavy run in the server (see `k2lsp.server.runs.launch`)."""

    async def drive(ls: K2LanguageServer, run: Run, settings: Any) -> None:
        from k2lsp.agent.heavy.scheduler import run_heavy
        from k2lsp.server.runs import ended_by

        assert run.stream is not None
        out = None
        stream_sink = run.stream.sink

        def own(event: Event) -> None:  # candidates' own streams stay in their trajectories
            if event.run_id == run.id:
                stream_sink(event)

        try:
            out = await run_heavy(run.request, n, settings, [own], finish=_finisher(ls, run))
            run.outcome, run.usage = out.outcome.value, out.usage
        except (asyncio.CancelledError, Exception) as exc:
            ended_by(ls, run, exc, "heavy run")
        finally:
            run.state = "cancelled" if run.outcome == Outcome.CANCELLED.value else "finished"
            run.delivery = run.delivery or "skipped"
            run.stream.close(f"{run.outcome}: {run.delivery}")
            if out is not None:
                await _keep_alternatives(ls, run, out)

    return drive


def _finisher(ls: K2LanguageServer, run: Run) -> Any:
    async def finish(out: Any) -> Any:
        from k2lsp.server.delivery import deliver, report

        if out.winner is None:
            report(ls, run, "skipped", f"K2 heavy: {out.summary}", [])
            return out
        result = await deliver(ls, run, out.winner.result)
        if result.outcome is not Outcome.SUCCESS:
            out.outcome = result.outcome
        return out

    return finish


async def _keep_alternatives(ls: K2LanguageServer, run: Run, out: Any) -> None:
    """Keep the run copies of this heavy run's other changed candidates for
    `k2lsp.takeCandidate`; remove those of any earlier heavy run (and this run's unusable)."""
    for other in ls.runs.runs.values():
        if other is not run and other.heavy is not None:
            await _discard(other)
    keep = out.outcome is not Outcome.CANCELLED and any(
        c.changed and c is not out.winner for c in out.candidates
    )
    run.heavy = out
    if not keep:
        await _discard(run)


async def _discard(run: Run) -> None:
    out, run.heavy = run.heavy, None
    if out is not None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(out.cleanup)


async def take_candidate(ls: K2LanguageServer, raw: tuple[Any, ...]) -> dict[str, Any]:
    """k2lsp.takeCandidate {runId, candidate}: deliver another candidate of the latest heavy
    run instead of its winner (undo the winner first); every kept copy is removed after."""
    from k2lsp.server.commands import first_arg
    from k2lsp.server.delivery import deliver

    args = first_arg(raw)
    run_id, label = str(args.get("runId") or ""), str(args.get("candidate") or "")
    run = ls.runs.get(run_id)
    try:
        if run is None or run.heavy is None:
            raise UsageError(
                f"no candidates are kept for run {run_id!r}: only the latest heavy run's are, "
                "until another heavy run ends or one is taken"
            )
        cand = next((c for c in run.heavy.candidates if c.label == label and c.changed), None)
        if cand is None:
            known = ", ".join(c.label for c in run.heavy.candidates if c.changed)
            raise UsageError(
                f"run {run_id} has no candidate {label!r} with changes; it has: {known}"
            )
        if run.delivery in ("applied", "merged") and not run.undone:
            raise UsageError(
                f"the winner of run {run_id} is applied; undo it first (k2lsp.undo), "
                f"then take {label}"
            )
    except K2lspError as exc:  # answered as the request's error: the editor shows it once
        raise command_error(exc) from None
    run.undone = False
    await deliver(ls, run, cand.result)
    run.state = "finished"
    await _discard(run)
    return {"runId": run.id, "candidate": label, "delivery": run.delivery}
