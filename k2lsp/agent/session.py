"""One run, front-end agnostic: make the run copy, build client, tools and sandbox, drive the
agent loop, and hand back the change set (delivery is the front-end's choice).

Contract used by the CLI and the language server:

    request = RunRequest(task="fix the failing test", repo=Path("."), mode="task")
    result = await execute_run(request, settings, sinks=[print_event])
    # result.changes: ChangeSet of the run copy vs. its start (not yet delivered)
    # result.run_copy: the RunCopy (front-ends deliver from it, then call cleanup())

Configuration problems (missing folder, missing key, unknown provider) raise `UsageError`
before any event. Everything after `run_started` ends with exactly one `run_finished` event,
an unexpected exception too (outcome `usage_error`, summary "internal error: ...", the run
copy handed back in the result so the front-end still cleans it up).
Cancelling the asyncio task running `execute_run` ends the run with outcome `cancelled` and
returns normally (nothing is delivered; the user's tree is untouched). An optional `finish`
hook runs before `run_finished` so a front-end can deliver and report the final outcome
(e.g. `edit_conflict`) in the same event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from k2lsp.agent.events import Emitter, EventSink
from k2lsp.errors import K2lspError, Outcome, UsageError
from k2lsp.model.types import Usage
from k2lsp.runs.changes import ChangeSet

log = logging.getLogger(__name__)
T = TypeVar("T")

# Run modes: what the request asks for (drives prompt and read-only tool sets).
MODES = ("task", "ask", "fix_diagnostic", "explain", "refactor", "write_tests", "fix_failing_test")
READ_ONLY_MODES = ("ask", "explain")


@dataclass
class RunRequest:
    """What a front-end asks for."""

    task: str
    repo: Path
    mode: str = "task"
    context: str = ""  # selection, diagnostic, failing test output... for the prompt
    overlay: dict[str, str] = field(default_factory=dict)  # unsaved buffers: rel path -> text
    run_id: str | None = None
    focus_paths: list[str] = field(default_factory=list)  # files the task is about
    # Seed of ToolContext.state, shared by identity: front-ends put hooks in it (the language
    # server's async `approve(kind, detail) -> bool`) and read what tools store (e.g.
    # `last_test_result`) while the run is going.
    state: dict[str, Any] = field(default_factory=dict)
    conversation: str | None = None  # continue this conversation (k2lsp.agent.followup)
    # Tools the front-end adds (the ACP session's MCP tools); None: the run starts the MCP
    # servers of `settings.mcp` itself for its duration.
    tools: list[Any] | None = None
    # A budget shared with other runs (heavy mode's pool view); None: one from the settings.
    budget: Any = None

    @property
    def read_only(self) -> bool:
        """Ask/explain runs never edit."""
        return self.mode in READ_ONLY_MODES


@dataclass
class RunResult:
    """How a run ended and what it changed (undelivered)."""

    run_id: str
    outcome: Outcome
    summary: str
    changes: ChangeSet = field(default_factory=ChangeSet)
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    trajectory: Path | None = None
    run_copy: Any = None  # k2lsp.runs.runcopy.RunCopy when one was made
    messages: list[dict[str, Any]] = field(default_factory=list)  # the history at the end
    conversation: Any = None  # the Conversation continued (k2lsp.runs.conversations), if any


FinishHook = Callable[[RunResult], Awaitable[RunResult]]


def check_request(request: RunRequest, settings: Any) -> Path:
    """Validate what can be checked before a run starts; the resolved repo path."""
    if not request.task or not request.task.strip():
        raise UsageError('the task is empty; say what to do, e.g. --task "fix the failing test"')
    if request.mode not in MODES:
        raise UsageError(f"unknown mode {request.mode!r}; use one of: {', '.join(MODES)}")
    repo = Path(request.repo).expanduser()
    if not repo.exists():
        raise UsageError(
            f"folder {str(repo)!r} does not exist; pass --repo with your project folder"
        )
    if not repo.is_dir():
        raise UsageError(
            f"{str(repo)!r} is a file, not a folder; pass --repo with your project folder"
        )
    if not getattr(settings, "model", ""):
        raise UsageError("no model is configured; set K2LSP_MODEL or pass --model")
    return repo.resolve()


def redacting(sinks: list[EventSink]) -> EventSink:
    """One sink that redacts each event once and hands the safe copy to every sink.

    Streamed deltas (`DELTA_TYPES`) come out of the loop's `StreamRedactor`, which redacts
    across delta boundaries (stronger than redacting each piece): they are passed on as they
    are, so a delta is one event object and one redaction on its way to every sink."""
    from k2lsp.agent.events import DELTA_TYPES, Event
    from k2lsp.redact.cache import redact_tree

    def fanout(event: Event) -> None:
        if event.type in DELTA_TYPES:
            safe = event
        else:
            safe = Event(event.type, event.run_id, event.seq, redact_tree(event.data), event.ts)
        for sink in sinks:
            sink(safe)

    return fanout


def make_run_copy(repo: Path, run_id: str, overlay: dict[str, str], state_dir: Any = None) -> Any:
    """The run copy (`k2lsp.runs.runcopy.RunCopy`): the user's current state, private to the run."""
    from k2lsp.runs.runcopy import RunCopy

    return RunCopy.create(source=repo, run_id=run_id, overlay=dict(overlay), state_dir=state_dir)


async def execute_run(
    request: RunRequest,
    settings: Any,
    sinks: list[EventSink] | None = None,
    *,
    finish: FinishHook | None = None,
    trajectory_file: Path | None = None,
) -> RunResult:
    """Run the agent on `request`; returns the (undelivered) result. See the module doc."""
    from k2lsp.agent.followup import open_conversation, resume_copy
    from k2lsp.model.client import K2Client
    from k2lsp.redact import register_secret
    from k2lsp.runs.runcopy import new_run_id

    repo = check_request(request, settings)
    register_secret(getattr(settings, "api_key", ""))
    conv = open_conversation(request, settings, repo)  # UsageError: unknown, collected
    client = K2Client(settings)  # raises UsageError on bad provider / key
    resumed = resume_copy(conv) if conv is not None else None  # UsageError: busy
    run_id = request.run_id or new_run_id()
    state_dir = getattr(settings, "state_dir", None)
    path, trajectory, emitter = open_events(
        request,
        settings,
        repo,
        run_id,
        sinks,
        trajectory_file,
        conversation=conv.id if conv is not None else (run_id if _keeps(settings) else ""),
    )
    result = RunResult(run_id, Outcome.SUCCESS, "", trajectory=path, conversation=conv)
    result.run_copy = resumed
    try:
        if result.run_copy is None:
            making = asyncio.ensure_future(
                asyncio.to_thread(make_run_copy, repo, run_id, request.overlay, state_dir)
            )
            try:
                result.run_copy = await asyncio.shield(making)
            except asyncio.CancelledError:  # hand the copy back anyway: the front-end removes it
                result.run_copy = (await asyncio.gather(making, return_exceptions=True))[0]
                if not hasattr(result.run_copy, "cleanup"):
                    result.run_copy = None
                raise
        await _drive(request, settings, client, result.run_copy, emitter, trajectory, result)
        if finish is not None and result.outcome is not Outcome.CANCELLED:
            result = await uncancellable(finish(result))
    except asyncio.CancelledError:
        result.outcome = Outcome.CANCELLED
        result.summary = "the run was cancelled; nothing was delivered"
    except K2lspError as exc:
        result.outcome, result.summary = exc.outcome, str(exc)
    except Exception as exc:  # a bug: still end the run properly, the front-end cleans up
        log.exception("run %s failed", run_id)
        result.outcome = Outcome.USAGE_ERROR
        result.summary = (
            f"internal error: {type(exc).__name__}: {exc} (this is a bug in k2lsp; please "
            "report it with the trajectory)"
        )
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    close_events(emitter, trajectory, result.outcome, result.summary)
    return result


def _keeps(settings: Any) -> bool:
    """Are conversations kept (so a new run starts one)?"""
    return int(getattr(settings, "keep_conversations", 1) or 0) > 0


async def uncancellable(coro: Awaitable[T]) -> T:
    """Await a delivery to its end even if cancelled meanwhile (it reports what happened)."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task


def open_events(
    request: RunRequest,
    settings: Any,
    repo: Path,
    run_id: str,
    sinks: list[EventSink] | None,
    trajectory_file: Path | None,
    **started: Any,
) -> tuple[Path, Any, Emitter]:
    """The trajectory (its path, the open file) and emitter of a run (single or heavy), after
    emitting its `run_started` (`started`: fields after the common ones)."""
    from k2lsp.agent.trajectory import Trajectory, trajectory_path

    path = trajectory_file or trajectory_path(getattr(settings, "state_dir", None), run_id)
    trajectory = Trajectory(path)
    emitter = Emitter(run_id, [redacting([trajectory.event_safe, *(sinks or [])])])
    emitter.emit(
        "run_started",
        task=request.task,
        model=settings.model,
        provider=settings.provider,
        repo=str(repo),
        mode=request.mode,
        **started,
    )
    return path, trajectory, emitter


def close_events(emitter: Emitter, trajectory: Any, outcome: Outcome, summary: str) -> None:
    """Emit a run's one `run_finished`, then close its trajectory (even if emitting fails)."""
    try:
        emitter.emit(
            "run_finished", outcome=outcome.value, exit_code=outcome.exit_code, summary=summary
        )
    finally:
        trajectory.close()


async def _drive(
    request: RunRequest,
    settings: Any,
    client: Any,
    run_copy: Any,
    emitter: Emitter,
    trajectory: Any,
    result: RunResult,
) -> None:
    """Sandbox, tools and loop; fills `result` in place (outcome, summary, usage, changes)."""
    from k2lsp.agent.budgets import Budget
    from k2lsp.agent.compaction import Ledger
    from k2lsp.agent.followup import continue_messages, ledger_goal
    from k2lsp.agent.guards import DEFAULT_REPEAT_LIMIT, RepeatGuard
    from k2lsp.agent.loop import AgentLoop
    from k2lsp.agent.outcome import ActivityWatch, final_outcome, no_change_summary
    from k2lsp.agent.prompts import initial_messages
    from k2lsp.runs.workspace import Workspace
    from k2lsp.tools import build_registry
    from k2lsp.tools.base import ToolContext

    root = Path(run_copy.root)
    sandbox, preflight = await asyncio.to_thread(
        _open_sandbox, settings, root, Path(run_copy.source)
    )
    if preflight:
        emitter.emit("status", step=None, max_steps=None, phase="preflight", message=preflight)
    budget = request.budget or Budget.from_settings(settings)
    extra = getattr(settings, "extra", None) or {}
    ctx = ToolContext(
        workspace=Workspace.from_settings(root, settings),
        sandbox=sandbox,
        emitter=emitter,
        settings=settings,
        state=request.state,
    )
    allow_tests = bool(getattr(settings, "allow_test_changes", False))
    ctx.state.setdefault("allow_test_changes", allow_tests or request.mode == "write_tests")
    ctx.state.setdefault("task", request.task)  # repo_map boosts what the task mentions
    ctx.state.setdefault("base_text", lambda rel: _text(run_copy.base_bytes(rel)))  # diagnostics
    caught_up = ""
    if result.conversation is not None:  # your edits since, and the earlier turns' changes
        from k2lsp.agent.followup import prepare_copy

        caught_up = await asyncio.to_thread(prepare_copy, ctx.changes, run_copy, request.overlay)
        if caught_up:
            emitter.emit("status", step=None, max_steps=None, phase="catch_up", message=caught_up)
    mcp = await _mcp_tools(request, settings, Path(request.repo).resolve(), emitter)
    loop = AgentLoop(
        client,
        build_registry().extended(mcp.tools() if mcp is not None else request.tools or []),
        ctx,
        emitter,
        budget=budget,
        ledger=Ledger(goal=ledger_goal(result.conversation, request.task)),
        guard=RepeatGuard(int(extra.get("repeat_limit", DEFAULT_REPEAT_LIMIT))),
        trajectory=trajectory,
        read_only=request.read_only,
    )
    if result.conversation is not None:
        messages = continue_messages(result.conversation, request, caught_up)
    else:
        messages = initial_messages(
            request.task,
            mode=request.mode,
            read_only=request.read_only,
            context=request.context,
            focus_paths=request.focus_paths,
            repo_name=Path(request.repo).resolve().name,
        )
    finished = None
    activity = ActivityWatch()
    emitter.add_sink(activity)
    try:
        finished = await loop.run(messages)
        result.summary = finished.summary or "done"
    except K2lspError as exc:
        result.outcome, result.summary = exc.outcome, str(exc)
    finally:
        result.usage, result.steps = budget.used, budget.steps
        from k2lsp.tools.refs import close_servers  # language servers end with the run

        await asyncio.shield(asyncio.to_thread(close_servers, ctx.state))
        result.messages = loop.messages
        if sandbox is not None:
            await asyncio.shield(asyncio.to_thread(sandbox.close))
        if mcp is not None:
            await asyncio.shield(mcp.close())
    if result.outcome is not Outcome.CANCELLED:
        result.changes = await asyncio.to_thread(_change_set, run_copy, ctx.changes, emitter)
    if finished is not None:
        result.outcome = final_outcome(
            tests_failed=finished.tests_failed,
            changed=bool(result.changes),
            read_only=request.read_only,
            ran=activity.ran,
        )
        if result.outcome is Outcome.NO_CHANGE:
            result.summary = no_change_summary(finished.summary)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


async def _mcp_tools(request: RunRequest, settings: Any, repo: Path, emitter: Emitter) -> Any:
    """The run's own MCP hub (`k2lsp.tools.mcp.hub.McpHub`) when the front-end gave no tools
    and `settings.mcp` lists servers; problems are reported as a status event."""
    mcp = getattr(settings, "mcp", None)
    if request.tools is not None or mcp is None or not mcp.servers:
        return None
    from k2lsp.tools.mcp.hub import McpHub

    hub = McpHub(mcp.servers, cwd=repo, cap=mcp.output_cap_chars)
    await hub.start()
    for problem in hub.problems:
        emitter.emit("status", step=None, max_steps=None, phase="mcp", message=problem)
    return hub


def _change_set(run_copy: Any, recorded: ChangeSet, emitter: Emitter) -> ChangeSet:
    """The tools' record of the run's changes, cross-checked against git's view of the copy
    (`k2lsp.runs.reconcile`: the union is delivered, every disagreement is noted)."""
    from k2lsp.fs import safefs
    from k2lsp.runs.reconcile import reconcile

    root = Path(run_copy.root)
    changes, notes = reconcile(
        recorded, run_copy.changes(), lambda rel: safefs.read_entry(root, rel)
    )
    for note in notes:
        log.info("run %s: %s", emitter.run_id, note)
        emitter.emit("status", step=None, max_steps=None, phase="change_set", message=note)
    return changes


def _open_sandbox(settings: Any, root: Path, source: Path | None = None) -> tuple[Any, str]:
    """The sandbox chosen in `settings` for the run copy `root` of `source`, with the project's
    environment bound in, and the preflight text (raises SandboxUnavailable)."""
    from k2lsp.testrun.sandbox_select import open_sandbox

    return open_sandbox(settings, root, source)
