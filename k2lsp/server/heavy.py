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
        from k2lsp.server.runs import _synthetic_end

        assert run.stream is not None
        out = None
        stream_sink = run.stream.sink

        def own(event: Event) -> None:  # candidates' own streams stay in their trajectories
            if event.run_id == run.id:
                stream_sink(event)

        try:
            out = await run_heavy(run.request, n, settings, [own], finish=_finisher(ls, run))
            run.outcome, run.usage = out.outcome.value, out.usage
        except asyncio.CancelledError:
            _synthetic_end(run, Outcome.CANCELLED, "the run was cancelled; nothing was delivered")
        except K2lspError as exc:
            _synthetic_end(run, exc.outcome, str(exc))
            ls.show(f"K2: {exc}", types.MessageType.Error)
        except Exception as exc:
            log.exception("heavy run %s failed", run.id)
            _synthetic_end(run, Outcome.PROVIDER_ERROR, f"internal error: {exc}")
            ls.show(
                f"K2: the heavy run failed with an internal error: {exc}", types.MessageType.Error
            )
        finally:
            run.state = "cancelled" if run.outcome == Outcome.CANCELLED.value else "finished"
            run.delivery = run.delivery or "skipped"
            run.stream.close(f"{run.outcome}: {run.delivery}")
            if out is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(out.cleanup)

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
