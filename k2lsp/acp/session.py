"""One ACP session: its folder, mode, MCP tools, approvals and turns.

Each `session/prompt` is one k2lsp run (`k2lsp.agent.session.execute_run`): the prompt's
mentions become the run's focus and context, earlier turns are summarised into its context,
its events stream out as `session/update`s (one ordered outbox), tool approvals and the final
delivery ask through `session/request_permission`, and the change set lands through the
client's fs methods (`k2lsp.acp.delivery`). `session/cancel` cancels the run's task: the turn
ends with stop reason `cancelled` and nothing is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from pathlib import Path
from typing import Any

from acp import helpers, schema

from k2lsp.acp import store
from k2lsp.acp.prompt import prompt_parts
from k2lsp.acp.updates import UpdateMapper
from k2lsp.agent.events import Event
from k2lsp.errors import K2lspError, Outcome
from k2lsp.redact import redact

log = logging.getLogger(__name__)

# ACP mode id -> (k2lsp run mode, name, description)
MODES: dict[str, tuple[str, str, str]] = {
    "code": ("task", "Code", "edit files and run tests in the sandbox; asks before applying"),
    "ask": ("ask", "Ask", "answer questions about the code; never edits"),
    "plan": ("ask", "Plan", "read the code and propose a step-by-step plan; never edits"),
}
PLAN_PREFIX = "Make a concise step-by-step plan for this; do not change any file:\n"
OPTIONS = [
    schema.PermissionOption(option_id="allow_once", name="Allow once", kind="allow_once"),
    schema.PermissionOption(
        option_id="allow_always", name="Always allow in this session", kind="allow_always"
    ),
    schema.PermissionOption(option_id="reject_once", name="Reject", kind="reject_once"),
]
HISTORY_TURNS = 6  # earlier turns summarised into a new turn's context


def mode_state(current: str) -> schema.SessionModeState:
    """The session's modes for `session/new` and `session/load`."""
    modes = [schema.SessionMode(id=k, name=v[1], description=v[2]) for k, v in MODES.items()]
    return schema.SessionModeState(current_mode_id=current, available_modes=modes)


class AcpSession:
    """A live session of one ACP connection."""

    def __init__(
        self, conn: Any, record: store.SessionRecord, caps: Any, state_dir: Path, hub: Any
    ):
        self.conn = conn
        self.record = record
        self.caps = caps  # the client's ClientCapabilities
        self.state_dir = state_dir
        self.hub = hub  # k2lsp.tools.mcp.hub.McpHub of this session
        self.root = Path(record.cwd)
        self.allowed: set[str] = set()
        self.notes: list[str] = []  # configuration notices shown with the next turn
        self.touched: list[str] = []  # files written into the client's buffers (relative)
        self.task: asyncio.Task[Any] | None = None
        self.cancel_requested = False  # session/cancel came during the current turn
        self.mapper = UpdateMapper(self.root)
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._ids = itertools.count(1)

    @property
    def id(self) -> str:
        """The ACP session id."""
        return self.record.id

    # ---- the client's fs ------------------------------------------------------------------
    def offers(self, what: str) -> bool:
        """Does the client offer `fs.<what>` (`read_text_file`, `write_text_file`)?"""
        fs = getattr(self.caps, "fs", None)
        return bool(getattr(fs, what, False))

    async def read_buffer(self, path: str) -> str | None:
        """The client's buffer text of `path` (saved or not), else the file on disk."""
        if self.offers("read_text_file"):
            try:
                return (await self.conn.read_text_file(session_id=self.id, path=path)).content
            except Exception as exc:  # absent file or a client error: fall back to the disk
                log.debug("fs/read_text_file %s: %s", path, exc)
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    async def write_buffer(self, path: str, text: str) -> None:
        """Write through the client (`fs/write_text_file`)."""
        await self.conn.write_text_file(session_id=self.id, path=path, content=text)

    # ---- updates --------------------------------------------------------------------------
    def sink(self, loop: asyncio.AbstractEventLoop) -> Any:
        """An event sink (any thread) feeding the ordered outbox on `loop`."""

        def push(event: Event) -> None:
            for update in self.mapper.map(event):
                self._outbox.put_nowait(update)

        return lambda event: loop.call_soon_threadsafe(push, event)

    def say(self, text: str) -> None:
        """An agent message in the panel."""
        self._outbox.put_nowait(helpers.update_agent_message_text(text))

    async def _send_all(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is None:
                return
            if isinstance(item, asyncio.Future):
                if not item.done():
                    item.set_result(None)
                continue
            try:
                await self.conn.session_update(session_id=self.id, update=item)
            except Exception as exc:  # a closed client: keep draining
                log.warning("session/update failed: %s", exc)

    async def flush(self) -> None:
        """Wait until every update queued so far was sent."""
        await asyncio.sleep(0)  # let sinks called just before us queue their updates
        done = asyncio.get_running_loop().create_future()
        self._outbox.put_nowait(done)
        await done

    # ---- approvals ------------------------------------------------------------------------
    async def ask(self, kind: str, detail: str, call: Any = None) -> bool:
        """`session/request_permission` for `kind`; "always" allows `kind` for the session."""
        if kind in self.allowed:
            return True
        detail = redact(detail)
        if call is None:  # a tool asks: the request points at its running tool call
            call_id = self.mapper.current_call() or f"k2lsp-ask-{next(self._ids)}"
            tool_call = schema.ToolCallUpdate(tool_call_id=call_id, title=detail[:200])
        else:  # the delivery: show its diff as a tool call first
            self._outbox.put_nowait(call)
            tool_call = schema.ToolCallUpdate(
                tool_call_id=call.tool_call_id,
                title=call.title,
                kind=call.kind,
                status="pending",
                content=call.content,
            )
        await self.flush()
        response = await self.conn.request_permission(
            session_id=self.id, tool_call=tool_call, options=OPTIONS
        )
        outcome = response.outcome
        chosen = getattr(outcome, "option_id", "") if outcome.outcome == "selected" else ""
        if chosen == "allow_always":
            self.allowed.add(kind)
        allowed = chosen in ("allow_once", "allow_always")
        if call is not None:
            self._outbox.put_nowait(
                helpers.update_tool_call(
                    call.tool_call_id, status="completed" if allowed else "failed"
                )
            )
        return allowed

    def approver(self, loop: asyncio.AbstractEventLoop) -> Any:
        """The run's `approve(kind, detail) -> bool` (callable from any thread's loop)."""

        async def approve(kind: str, detail: str) -> bool:
            if asyncio.get_running_loop() is loop:
                return await self.ask(kind, detail)
            future = asyncio.run_coroutine_threadsafe(self.ask(kind, detail), loop)
            return await asyncio.wrap_future(future)

        return approve

    # ---- a turn ---------------------------------------------------------------------------
    async def prompt(self, blocks: list[Any], settings: Any) -> schema.PromptResponse:
        """Run one turn; returns when its updates were sent and its changes delivered."""
        from k2lsp.acp.turn import run_turn

        sender = asyncio.create_task(self._send_all(), name=f"k2lsp-acp-out-{self.id}")
        self.cancel_requested = False
        try:
            for note in self.notes:
                self.say(f"[k2lsp] {note}\n\n")
            self.notes.clear()
            from k2lsp.runs.workspace import Workspace

            secret = Workspace.from_settings(self.root, settings).is_secret
            parts = await prompt_parts(blocks, self.root, self.read_buffer, secret)
            outcome, usage = await run_turn(self, parts, settings)
        except K2lspError as exc:
            self.say(f"k2lsp: {exc}")
            outcome, usage = exc.outcome, None
        finally:
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
        if self.cancel_requested:  # e.g. during the delivery's question: still a cancelled turn
            outcome = Outcome.CANCELLED
        return schema.PromptResponse(stop_reason=stop_reason(outcome), usage=usage)

    def cancel(self) -> None:
        """`session/cancel`: stop the running turn (it ends as `cancelled`)."""
        self.cancel_requested = True
        if self.task is not None and not self.task.done():
            self.task.cancel()


def stop_reason(outcome: Outcome) -> Any:
    """The ACP stop reason of a run outcome."""
    if outcome is Outcome.CANCELLED:
        return "cancelled"
    if outcome is Outcome.BUDGET_EXHAUSTED:
        return "max_turn_requests"
    return "end_turn"
