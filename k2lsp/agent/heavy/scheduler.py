"""The heavy run: N candidates in parallel on one event loop, one shared budget, one cancel;
a baseline test run; each candidate verified as it ends; selection; the judge if needed.

Events (one stream): the heavy run's `run_started` and `heavy_started`; each candidate's own
run (its run id `<heavy-id>-c<i>`, from `run_started` to `run_finished`); `candidate_finished`
with its evidence; `judge_verdict`s; `heavy_selected`; the heavy run's `run_finished`.
Cancelling the task running `run_heavy` cancels every candidate, the baseline and the judge;
it returns normally with outcome `cancelled`, and `HeavyOutcome.cleanup()` removes every run
copy (the front-end calls it after delivering, as with a single run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from k2lsp.agent.events import Emitter, Event, EventSink
from k2lsp.agent.heavy.budget import Pool
from k2lsp.agent.heavy.candidate import Candidate
from k2lsp.agent.heavy.diversity import opening_plan, plan_context, prefix_identity, temperatures
from k2lsp.agent.heavy.evidence import Baseline, Boxes, take_baseline, verify
from k2lsp.agent.heavy.outcome import HeavyOutcome, heavy_outcome
from k2lsp.agent.heavy.selection import Tiering, explain, tier
from k2lsp.agent.session import (
    RunRequest,
    check_request,
    close_events,
    open_events,
    uncancellable,
)
from k2lsp.errors import K2lspError, Outcome, UsageError

log = logging.getLogger(__name__)
MAX_CANDIDATES = 16


HeavyFinish = Callable[[HeavyOutcome], Awaitable[HeavyOutcome]]


async def run_heavy(
    request: RunRequest,
    n: int,
    settings: Any,
    sinks: list[EventSink] | None = None,
    *,
    finish: HeavyFinish | None = None,
    trajectory_file: Path | None = None,
) -> HeavyOutcome:
    """Run `request` as `n` candidates and choose one (see the module doc)."""
    from k2lsp.redact import register_secret
    from k2lsp.runs.runcopy import new_run_id

    if not 1 <= n <= MAX_CANDIDATES:
        raise UsageError(f"--heavy takes 1 to {MAX_CANDIDATES} candidates, not {n}")
    if request.read_only:
        raise UsageError(f"heavy mode is for editing requests, not {request.mode!r}")
    repo = check_request(request, settings)
    register_secret(getattr(settings, "api_key", ""))
    heavy_id = request.run_id or new_run_id()
    path, trajectory, emitter = open_events(
        request, settings, repo, heavy_id, sinks, trajectory_file
    )
    out = HeavyOutcome(heavy_id, Outcome.SUCCESS, "", trajectory=path)
    run = _HeavyRun(request, n, settings, sinks or [], emitter, trajectory, out)
    try:
        await run.start(repo)
        await run.select()
        if finish is not None and out.outcome is not Outcome.CANCELLED:
            out = await uncancellable(finish(out))
    except asyncio.CancelledError:
        await run.stop()
        out.outcome, out.summary = Outcome.CANCELLED, "heavy run cancelled; nothing was delivered"
    except K2lspError as exc:
        await run.stop()
        out.outcome, out.summary = exc.outcome, str(exc)
    except Exception as exc:  # a bug: end properly; the front-end still cleans up
        log.exception("heavy run %s failed", heavy_id)
        await run.stop()
        out.outcome = Outcome.USAGE_ERROR
        out.summary = f"internal error: {type(exc).__name__}: {exc} (a bug in k2lsp; report it)"
    close_events(emitter, trajectory, out.outcome, out.summary)
    return out


class _HeavyRun:
    """The state of one heavy run while it goes."""

    def __init__(
        self,
        request: RunRequest,
        n: int,
        settings: Any,
        sinks: list[EventSink],
        emitter: Emitter,
        trajectory: Any,
        out: HeavyOutcome,
    ) -> None:
        self.request, self.n, self.settings = request, n, settings
        self.sinks, self.emitter, self.trajectory, self.out = sinks, emitter, trajectory, out
        self.pool = Pool.from_settings(settings)
        self.tasks: list[asyncio.Task[None]] = []
        self.baseline: asyncio.Task[Baseline] | None = None
        self.boxes = Boxes()  # sandboxes of running baseline/verification suites
        temps, self.temp_note = temperatures(settings, n)
        self.spread = len(set(temps)) > 1
        rid = emitter.run_id
        out.candidates = [
            Candidate(i, f"{rid}-c{i + 1}", temps[i], opening_plan(i)) for i in range(n)
        ]

    async def start(self, repo: Path) -> None:
        """Announce, start the baseline and every candidate, wait for all of them."""
        from k2lsp.agent.heavy.resources import plan_admission

        admission = await asyncio.to_thread(plan_admission, self.settings, self.n)
        common, shortest = self._prefix()
        cands = self.out.candidates
        self.emitter.emit(
            "heavy_started",
            candidates=self.n,
            candidate_ids=[c.run_id for c in cands],
            temperatures=[c.temperature for c in cands],
            temperature_note=self.temp_note,
            plans=[c.plan for c in cands],
            at_once=admission.at_once,
            admission=admission.why,
            prefix_chars=common,
            first_request_chars=shortest,
        )
        self.baseline = asyncio.create_task(
            asyncio.to_thread(
                take_baseline,
                self.settings,
                repo,
                f"{self.emitter.run_id}-base",
                dict(self.request.overlay),
                self.boxes,
            )
        )
        gate = asyncio.Semaphore(admission.at_once)
        self.tasks = [asyncio.create_task(self._candidate(c, gate)) for c in cands]
        await asyncio.gather(*self.tasks)

    def _prefix(self) -> tuple[int, int]:
        """Prefix identity of the candidates' first requests (as the client would send them)."""
        from k2lsp.agent.prompts import initial_messages
        from k2lsp.model.client import K2Client
        from k2lsp.tools import build_registry

        try:
            client = K2Client(self.settings)
        except K2lspError:
            return 0, 0
        schemas = [t.schema() for t in build_registry().tools(read_only=False)]
        r = self.request
        bodies = [
            client.build_request(
                initial_messages(
                    r.task,
                    mode=r.mode,
                    context=plan_context(r.context, c.index),
                    focus_paths=r.focus_paths,
                    repo_name=Path(r.repo).resolve().name,
                ),
                schemas,
            )
            for c in self.out.candidates
        ]
        return prefix_identity(bodies)

    async def _candidate(self, c: Candidate, gate: asyncio.Semaphore) -> None:
        from k2lsp.agent.session import execute_run

        if gate.locked():
            self.emitter.emit(
                "status",
                step=None,
                max_steps=None,
                phase="queued",
                message=f"{c.label} queued: waiting for a sandbox slot",
            )
        async with gate:
            c.state = "running"
            r = self.request
            sub = replace(
                r,
                context=plan_context(r.context, c.index),
                run_id=c.run_id,
                state=dict(r.state),
                budget=self.pool.candidate(),
            )
            settings = self.settings
            if self.spread:
                settings = settings.model_copy(update={"temperature": c.temperature})
            try:
                c.result = await execute_run(sub, settings, [*self.sinks, self._progress(c)])
            except K2lspError as exc:
                c.error, c.error_outcome, c.state = str(exc), exc.outcome.value, "done"
                self._finished(c)
                return
            if c.result.outcome is Outcome.CANCELLED:
                c.state = "done"
                return
            c.state = "verifying"
            base = await self._baseline()
            copy = c.result.run_copy
            if copy is not None:
                root, source = Path(copy.root), Path(copy.source)
                job = asyncio.ensure_future(
                    asyncio.to_thread(
                        verify, settings, root, source, c.result.changes, base, self.boxes
                    )
                )
                try:
                    c.evidence = await asyncio.shield(job)
                except asyncio.CancelledError:
                    await asyncio.wait([job])  # its copy is removed after; stop() closed its box
                    raise
                except (K2lspError, OSError) as exc:
                    c.error = f"verification failed: {exc}"
            c.state = "done"
        self._finished(c)

    def _progress(self, c: Candidate) -> EventSink:
        """A sink turning a candidate's tool calls, test runs and end into heavy-run `status`
        events (phase `candidate`), for front-ends that show only the heavy run's stream."""

        def sink(event: Event) -> None:
            d = event.data
            if event.type == "tool_call":
                text = f"→ {d.get('name')}"
            elif event.type == "test_result":
                text = f"tests: {d.get('passed', 0)} passed, {d.get('failed', 0)} failed"
            elif event.type == "run_finished":
                text = f"ended {d.get('outcome')}"
            else:
                return
            self.emitter.emit(
                "status", step=None, max_steps=None, phase="candidate", message=f"{c.label}: {text}"
            )

        return sink

    async def _baseline(self) -> Baseline:
        assert self.baseline is not None
        return await asyncio.shield(self.baseline)

    def _finished(self, c: Candidate) -> None:
        rec = c.record()
        self.emitter.emit(
            "candidate_finished",
            candidate=c.label,
            candidate_run_id=c.run_id,
            outcome=rec["outcome"],
            summary=rec["summary"],
            steps=rec["steps"],
            cost_usd=rec["cost_usd"],
            prompt_tokens=rec["prompt_tokens"],
            cached_tokens=rec["cached_tokens"],
            completion_tokens=rec["completion_tokens"],
            evidence=rec["evidence"],
        )

    async def stop(self) -> None:
        """Cancel whatever still runs and wait for it (run copies stay for cleanup())."""
        for task in self.tasks:
            task.cancel()
        await asyncio.to_thread(self.boxes.close_all)  # docker: running suites stop now
        if self.tasks:
            await asyncio.wait(self.tasks)
        if self.baseline is not None:
            # Its thread ends once its suite does (docker: at once, its box was closed; bwrap:
            # when the test run ends, bounded by command_timeout_s); then its copy is gone.
            await asyncio.wait([self.baseline])

    async def select(self) -> None:
        """Tiers, then the judge when several finalists are left; fills `out`."""
        r = self.request
        tests_may_change = r.mode == "write_tests" or bool(
            getattr(self.settings, "allow_test_changes", False)
        )
        t = tier(
            self.out.candidates,
            tests_may_change=tests_may_change,
            need_targets=r.mode != "write_tests",
        )
        judged = None
        if len(t.finalists) > 1:
            judged = await self._judge(t)
        winner = judged.winner if judged else (t.finalists[0] if t.finalists else None)
        self.out.winner = winner
        self.out.usage = self.pool.used
        explanation = explain(winner, t, judged is not None) if winner else _no_winner(t)
        self.out.outcome = heavy_outcome(self.out.candidates, winner)
        self.out.summary = explanation
        self._announce(t, winner, explanation, judged)

    async def _judge(self, t: Tiering) -> Any:
        from k2lsp.agent.heavy.judge import judge
        from k2lsp.agent.usage import emit_usage
        from k2lsp.model.client import K2Client

        client = K2Client(self.settings)

        def on_usage(usage: Any) -> None:
            # The pool counted it already: the event carries the totals of the whole run.
            emit_usage(self.emitter, usage, self.pool.used)

        try:
            return await judge(
                client,
                self.request.task,
                t.finalists,
                self.pool,
                emit=self.emitter.emit,
                trajectory=self.trajectory,
                run_id=self.emitter.run_id,
                on_usage=on_usage,
            )
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    def _announce(self, t: Tiering, winner: Candidate | None, text: str, judged: Any) -> None:
        used = self.pool.used
        ratio = used.cached_tokens / used.prompt_tokens if used.prompt_tokens else 0.0
        self.out.selection = {
            "winner": winner.label if winner else None,
            "explanation": text,
            "excluded": dict(t.excluded),
            "finalists": [c.label for c in t.finalists],
            "judge": judged.to_dict() if judged else None,
            "cache_ratio": round(ratio, 4),
            "cost_usd": round(used.cost_usd, 6),
        }
        self.emitter.emit(
            "heavy_selected",
            winner=winner.label if winner else None,
            winner_run_id=winner.run_id if winner else None,
            explanation=text,
            candidates=[c.record() for c in self.out.candidates],
            excluded=dict(t.excluded),
            finalists=[c.label for c in t.finalists],
            ties=list(judged.ties) if judged else [],
            disagreements=list(judged.disagreements) if judged else [],
            cache_ratio=round(ratio, 4),
            cost_usd=round(used.cost_usd, 6),
            judge=judged.to_dict() if judged else None,
        )


def _no_winner(t: Tiering) -> str:
    lines = [*t.notes] + [f"{label}: {why}" for label, why in t.excluded.items()]
    return "no candidate qualified. " + " | ".join(lines)
