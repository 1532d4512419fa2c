"""The agent loop: ask K2 for a step, run the tool calls it made, repeat until a reply has no
tool calls or a budget runs out.

History rules (k2-protocol.md): each reply is appended exactly as received
(`client.history_message`), followed by exactly one `role: "tool"` message per call, in call
order. The loop continues whenever the reply carries parsed tool calls, whatever
`finish_reason` says. Control flow uses exceptions: `_Finished` ends a run normally,
`BudgetExhausted` / `ProviderError` end it early, and task cancellation becomes `Cancelled`.

Cancellation policy: editing tools run shielded and are allowed to finish before a cancel is
honoured (they are quick and write whole files), so no edit is ever half-applied; read-only
tools, tests and commands are abandoned at once (the run copy is discarded on cancel anyway).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from k2lsp.agent.budgets import Budget
from k2lsp.agent.compaction import Ledger, compact, message_chars, should_compact
from k2lsp.agent.events import Emitter, Event
from k2lsp.agent.guards import RepeatGuard
from k2lsp.agent.trajectory import Trajectory
from k2lsp.agent.usage import record_failed, record_usage
from k2lsp.errors import Cancelled, ContextOverflow, HistoryRejected, ProviderError
from k2lsp.model.toolargs import refusal_text, repair_history, strict_arguments
from k2lsp.model.types import AssistantTurn, ToolCall
from k2lsp.redact import StreamRedactor
from k2lsp.redact.cache import mark_safe, redact_text
from k2lsp.tools.base import ToolContext, ToolRegistry, ToolResult, cap_output

EMPTY_RESULT = "(the tool returned no output)"
MAX_RESULT_CHARS = 50_000
CHARS_PER_TOKEN = 3.5


def model_text(result: ToolResult, limit: int = MAX_RESULT_CHARS) -> str:
    """The text the model sees for a tool result: redacted, capped, never empty."""
    text = cap_output(
        redact_text(result.text),
        limit,
        "ask for a smaller part (a line range, a narrower pattern or path)",
    )
    return mark_safe(text) if text.strip() else EMPTY_RESULT


class ModelClient(Protocol):
    """What the loop needs from `k2lsp.model.client.K2Client`."""

    context_length: int

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: Any = None,
        on_retry: Any = None,
    ) -> AssistantTurn: ...

    def history_message(self, turn: AssistantTurn) -> dict[str, Any]: ...


class _Finished(Exception):
    """The model replied without tool calls: the run is done."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


@dataclass
class LoopResult:
    """How the loop ended (the caller maps errors to outcomes)."""

    summary: str
    steps: int
    tests_failed: bool | None  # last run_tests result: True failed, False passed, None not run


class AgentLoop:
    """Drives one run's conversation; components are injected."""

    def __init__(
        self,
        client: ModelClient,
        registry: ToolRegistry,
        ctx: ToolContext,
        emitter: Emitter,
        *,
        budget: Budget,
        ledger: Ledger,
        guard: RepeatGuard | None = None,
        trajectory: Trajectory | None = None,
        read_only: bool = False,
        max_result_chars: int = MAX_RESULT_CHARS,
    ) -> None:
        self.client = client
        self.registry = registry
        self.ctx = ctx
        self.emitter = emitter
        self.budget = budget
        self.ledger = ledger
        self.guard = guard or RepeatGuard()
        self.trajectory = trajectory
        self.max_result_chars = max_result_chars
        self.offered = {t.name: t for t in registry.tools(read_only=read_only)}
        self.schemas = [t.schema() for t in self.offered.values()]
        self.messages: list[dict[str, Any]] = []
        self.tests_failed: bool | None = None
        self.compactions = 0
        self._tokens_per_char = 1 / CHARS_PER_TOKEN
        self._test_events = 0
        self._schema_len = len(json.dumps(self.schemas))
        # The history's size, kept as it grows: the list last sized and how much of it was.
        self._sized: list[dict[str, Any]] | None = None
        self._sized_n = 0
        self._sized_chars = 0
        # Streamed text is redacted across deltas (a key split over pieces never gets out
        # whole); the held tail is flushed at the end of every reply or attempt.
        self._redactors = {k: StreamRedactor() for k in ("reasoning", "content")}
        self._streaming: str | None = None
        emitter.add_sink(self._watch)

    async def run(self, messages: list[dict[str, Any]]) -> LoopResult:
        """Run to the end; raises BudgetExhausted, ProviderError or Cancelled."""
        self.messages = list(messages)
        try:
            async with asyncio.timeout(self.budget.remaining_time()):
                while True:
                    await self._step()
        except _Finished as fin:
            return LoopResult(fin.summary, self.budget.steps, self.tests_failed)
        except TimeoutError:
            raise self.budget.time_exhausted() from None
        except asyncio.CancelledError:
            raise Cancelled("the run was cancelled; nothing was delivered") from None

    async def _step(self) -> None:
        step = self.budget.begin_step()
        self._status(step, "model", f"step {step} of {self.budget.max_steps}")
        if should_compact(self._estimate_tokens(), self.client.context_length):
            self._compact(step, forced=False)
        try:
            turn = await self._request(step)
        except ContextOverflow as exc:
            if exc.prompt_tokens:  # the host counted the prompt: size the compaction by it
                chars = self._history_chars()
                self._tokens_per_char = exc.prompt_tokens / max(1, chars)
            self._compact(step, forced=True, host=exc.status is not None)
            try:
                turn = await self._request(step)
            except ContextOverflow as again:  # the fixed part (system, tool schemas) is large
                self._compact(step, forced=True, host=again.status is not None, hard=True)
                turn = await self._request(step)
        reply = self.client.history_message(turn)
        if self.trajectory is not None:
            usage = asdict(turn.usage)
            self.trajectory.response(self.emitter.run_id, step, reply, usage, turn.finish_reason)
        self.messages.append(reply)
        self.ledger.note_reply(turn.reasoning, turn.content)
        if not turn.tool_calls:
            raise _Finished(turn.content or "")
        for call in turn.tool_calls:
            await self._run_call(call)
        self.budget.check()

    async def _request(self, step: int) -> AssistantTurn:
        msgs = self.messages
        if self.trajectory is not None:
            self.trajectory.request(self.emitter.run_id, step, msgs, self.schemas)
        chars = self._history_chars()
        try:
            turn = await self._complete(msgs)
        except ProviderError as exc:
            record_failed(self.emitter, self.budget, exc.attempt_usage)
            raise
        finally:
            self._flush_deltas()
        record_failed(self.emitter, self.budget, turn.failed_attempts)
        if turn.usage.prompt_tokens > 0 and chars > 0 and not turn.usage.estimated:
            self._tokens_per_char = turn.usage.prompt_tokens / chars
        record_usage(self.emitter, self.budget, turn.usage)
        return turn

    async def _complete(self, msgs: list[dict[str, Any]]) -> AssistantTurn:
        """One reply; a history the host cannot parse is repaired once (see toolargs)."""
        try:
            return await self.client.complete(
                msgs, self.schemas, on_delta=self._on_delta, on_retry=self._on_retry
            )
        except HistoryRejected as exc:
            repaired = repair_history(msgs)
            if repaired is msgs:
                raise
            record_failed(self.emitter, self.budget, exc.attempt_usage)
            self.messages = repaired
            return await self.client.complete(
                repaired, self.schemas, on_delta=self._on_delta, on_retry=self._on_retry
            )

    async def _run_call(self, call: ToolCall) -> None:
        args, problem = strict_arguments(call.arguments)
        if call.problem is not None or args is None:
            if call.problem is None:
                call = replace(call, problem=problem)
            shown = call.received if call.received is not None else call.arguments
            self.emitter.emit("tool_call", id=call.id, name=call.name, args=shown)
            result = ToolResult(False, refusal_text(call), "call not run: bad arguments")
        else:
            self.emitter.emit("tool_call", id=call.id, name=call.name, args=args)
            tests_before = self._test_events
            result = await self._guarded(call.name, args)
            if call.name == "run_tests" and self._test_events == tests_before:
                self.tests_failed = not result.ok  # the tool emitted no test_result event
        text = model_text(result, self.max_result_chars)
        self.emitter.emit(
            "tool_result",
            id=call.id,
            name=call.name,
            ok=result.ok,
            summary=redact_text(result.summary),
            text=text,
        )
        self.ledger.note_tool(call.name, result.ok, result.summary)
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": text})

    async def _guarded(self, name: str, args: dict[str, Any]) -> ToolResult:
        blocked = self.guard.check(name, args)
        if blocked is not None:
            return ToolResult(False, blocked, "repeated call blocked")
        tool_ = self.offered.get(name)
        if tool_ is None:
            known = ", ".join(self.offered)
            return ToolResult(
                False,
                f"Error: there is no tool {name!r} in this run. Available tools: {known}.",
                "unknown tool",
            )
        task = asyncio.ensure_future(self.registry.execute(name, args, self.ctx))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if tool_.edits and not task.done():
                await asyncio.wait([task])  # let an edit finish: never half-applied
            else:
                task.cancel()
            raise

    def _watch(self, event: Event) -> None:
        if event.type == "test_result":
            self._test_events += 1
            d = event.data
            ok = d.get("ok")
            self.tests_failed = (
                (not ok) if ok is not None else bool(d.get("failed") or d.get("errors"))
            )
        self.ledger.on_event(event)

    def _compact(self, step: int, *, forced: bool, host: bool = False, hard: bool = False) -> None:
        """Fold old turns into the ledger; `hard` (a forced compaction did not fit): keep only
        the last call/result pair, cut to 5% of the context."""
        ctx_chars = int(self.client.context_length / self._tokens_per_char)
        before = len(self.messages)
        keep = ctx_chars * (5 if hard else 15 if forced else 30) // 100
        units = 1 if hard else 2 if forced else None
        new = compact(self.messages, self.ledger, keep_chars=keep, max_units=units)
        if new is self.messages:
            return
        self.messages = new
        self.compactions += 1
        why = (
            "the host reported a context overflow"
            if host
            else "the next request would not fit the context"
            if forced
            else "the context is nearly full"
        )
        self.ledger.decide(f"context compacted at step {step} ({why})")
        self._status(
            step,
            "compacting",
            f"compacted the conversation ({why}): {before} -> {len(self.messages)} messages",
        )

    def _estimate_tokens(self) -> int:
        return int(self._history_chars() * self._tokens_per_char)

    def _history_chars(self) -> int:
        """`message_chars` of the whole history plus the schemas, sizing new messages only.

        The history only grows by appends between compactions/repairs, and those put a new
        list in `self.messages`, which is then sized from the start."""
        msgs = self.messages
        if msgs is not self._sized or len(msgs) < self._sized_n:
            self._sized, self._sized_n, self._sized_chars = msgs, 0, 0
        for m in msgs[self._sized_n :]:
            self._sized_chars += message_chars(m)
        self._sized_n = len(msgs)
        return self._sized_chars + self._schema_len

    def _on_delta(self, kind: str, text: str) -> None:
        if kind not in self._redactors:
            return
        if self._streaming not in (None, kind):
            self._flush_deltas()  # reasoning ends where content starts: keep the order
        self._streaming = kind
        safe = self._redactors[kind].feed(text)
        if safe:
            self.emitter.emit(kind, text=safe)

    def _flush_deltas(self) -> None:
        for kind, redactor in self._redactors.items():
            rest = redactor.flush()
            if rest:
                self.emitter.emit(kind, text=rest)
        self._streaming = None

    def _on_retry(self, attempt: int, delay_s: float, reason: str) -> None:
        self._flush_deltas()
        self._status(
            self.budget.steps,
            "retrying",
            f"attempt {attempt} failed ({reason}); retrying in {delay_s:.1f} s",
        )

    def _status(self, step: int, phase: str, message: str) -> None:
        self.emitter.emit(
            "status", step=step, max_steps=self.budget.max_steps, phase=phase, message=message
        )
