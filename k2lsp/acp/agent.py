"""The ACP agent: `initialize`, `session/new`, `session/load`, `session/set_mode`,
`session/prompt` and `session/cancel`, wired to `AcpSession`.

Capabilities are stated as built: sessions load; prompts take text, resource links and
embedded text resources (no images or audio: K2 reads text); MCP servers over stdio and
streamable HTTP (no SSE). The key comes from the environment or k2lsp's configuration, so no
authentication method is offered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from acp import PROTOCOL_VERSION, RequestError, helpers, schema

from k2lsp import __version__
from k2lsp.acp import store
from k2lsp.acp.session import MODES, AcpSession, mode_state
from k2lsp.errors import K2lspError

log = logging.getLogger(__name__)


class K2Agent:
    """One ACP connection's agent (implements `acp.Agent`)."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.caps: Any = schema.ClientCapabilities()
        self.sessions: dict[str, AcpSession] = {}
        self.prompts: set[asyncio.Task[Any]] = set()  # handlers of prompts being answered

    def on_connect(self, conn: Any) -> None:
        """Keep the client side of the connection."""
        self.conn = conn

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: Any = None,
        client_info: Any = None,
        **_: Any,
    ) -> schema.InitializeResponse:
        """Agree on the protocol version and say what this agent does."""
        self.caps = client_capabilities or schema.ClientCapabilities()
        asyncio.get_running_loop().run_in_executor(None, prewarm)
        caps = schema.AgentCapabilities(
            load_session=True,
            prompt_capabilities=schema.PromptCapabilities(
                image=False, audio=False, embedded_context=True
            ),
            mcp_capabilities=schema.McpCapabilities(http=True, sse=False),
            session_capabilities=schema.SessionCapabilities(list=schema.SessionListCapabilities()),
        )
        return schema.InitializeResponse(
            protocol_version=min(int(protocol_version), PROTOCOL_VERSION),
            agent_capabilities=caps,
            agent_info=schema.Implementation(
                name="k2lsp", title="k2lsp (Kimi K2)", version=__version__
            ),
            auth_methods=[],
        )

    async def authenticate(self, method_id: str, **_: Any) -> None:
        """No authentication methods are offered (the key comes from the environment)."""
        raise bad_params("k2lsp reads its API key from the environment")

    async def new_session(
        self, cwd: str, mcp_servers: list[Any] | None = None, **_: Any
    ) -> schema.NewSessionResponse:
        """A fresh session in `cwd`, with its MCP servers started."""
        record = store.SessionRecord(store.new_session_id(), _folder(cwd))
        session = await self._open(record, mcp_servers or [])
        await self._save(session)
        return schema.NewSessionResponse(session_id=record.id, modes=mode_state(record.mode))

    async def load_session(
        self, cwd: str, session_id: str, mcp_servers: list[Any] | None = None, **_: Any
    ) -> schema.LoadSessionResponse:
        """Resume a saved session: its history is replayed as updates, then the answer."""
        folder = _folder(cwd)
        try:
            record = store.load(_state_dir(folder), session_id)
        except K2lspError as exc:
            raise bad_params(str(exc)) from None
        record.cwd = folder
        await self._open(record, mcp_servers or [])
        for update in store.replay(record):
            await self.conn.session_update(session_id=record.id, update=update)
        return schema.LoadSessionResponse(modes=mode_state(record.mode))

    async def list_sessions(
        self, cwd: str | None = None, cursor: str | None = None, **_: Any
    ) -> schema.ListSessionsResponse:
        """Saved sessions (of `cwd` when given), most recent first, titled by their first prompt."""
        import datetime

        folder = _folder(cwd) if cwd else None
        state = _state_dir(folder or str(Path.cwd()))
        infos = []
        for record, mtime in store.listing(state, folder):
            title = " ".join(record.turns[0].prompt.split())[:80] if record.turns else None
            when = datetime.datetime.fromtimestamp(mtime, datetime.UTC).isoformat()
            infos.append(
                schema.SessionInfo(
                    session_id=record.id, cwd=record.cwd, title=title, updated_at=when
                )
            )
        return schema.ListSessionsResponse(sessions=infos)

    async def set_session_mode(self, session_id: str, mode_id: str, **_: Any) -> None:
        """Switch between ask, code and plan."""
        session = self._session(session_id)
        if mode_id not in MODES:
            raise bad_params(f"unknown mode {mode_id!r}; use one of {', '.join(MODES)}")
        session.record.mode = mode_id
        await self._save(session)
        await self.conn.session_update(
            session_id=session_id, update=helpers.update_current_mode(mode_id)
        )

    async def prompt(self, session_id: str, prompt: list[Any], **_: Any) -> schema.PromptResponse:
        """Run one turn of the session."""
        session = self._session(session_id)
        if session.task is not None and not session.task.done():
            raise RequestError(-32600, "a prompt is still running in this session; cancel it first")
        try:
            settings = _settings(session.root, [])  # notices were shown when it opened
        except K2lspError as exc:
            await self.conn.session_update(
                session_id=session_id, update=helpers.update_agent_message_text(f"k2lsp: {exc}")
            )
            return schema.PromptResponse(stop_reason="end_turn")
        me = asyncio.current_task()
        if me is not None:
            self.prompts.add(me)
        try:
            return await session.prompt(prompt, settings)
        finally:
            self.prompts.discard(me)  # type: ignore[arg-type]

    async def cancel(self, session_id: str, **_: Any) -> None:
        """Stop the session's running turn."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.cancel()

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop every session's turn (letting it remove its run copy) and MCP servers."""
        turns = [s.task for s in self.sessions.values() if s.task is not None]
        for session in self.sessions.values():
            session.cancel()
        if turns:
            await asyncio.wait(turns, timeout=grace_s)
        if self.prompts:  # let each prompt answer (stop reason `cancelled`) before we go
            await asyncio.wait(set(self.prompts), timeout=grace_s)
        for session in self.sessions.values():
            if session.hub is not None:
                await session.hub.close()

    # ---- helpers --------------------------------------------------------------------------
    def _session(self, session_id: str) -> AcpSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise bad_params(f"unknown session {session_id[:80]!r}")
        return session

    async def _open(self, record: store.SessionRecord, mcp_servers: list[Any]) -> AcpSession:
        from k2lsp.tools.mcp.hub import McpHub

        root = Path(record.cwd)
        notes: list[str] = []
        try:
            settings = _settings(root, notes, require_key=False)
        except K2lspError as exc:
            raise bad_params(str(exc)) from None
        servers = {**settings.mcp.servers, **client_servers(mcp_servers, notes)}
        hub = McpHub(servers, cwd=root, cap=settings.mcp.output_cap_chars)
        await hub.start()
        session = AcpSession(self.conn, record, self.caps, Path(settings.state_dir), hub)
        session.notes = notes + hub.problems
        if record.id in self.sessions:
            await self.close_one(record.id)
        self.sessions[record.id] = session
        return session

    async def close_one(self, session_id: str) -> None:
        """Forget a session (its turn cancelled, its MCP servers stopped)."""
        old = self.sessions.pop(session_id, None)
        if old is not None:
            old.cancel()
            if old.hub is not None:
                await old.hub.close()

    async def _save(self, session: AcpSession) -> None:
        try:
            store.save(session.state_dir, session.record)
        except OSError as exc:
            log.warning("could not save session %s: %s", session.id, exc)


PREWARM = (
    "k2lsp.config.settings",
    "k2lsp.agent.session",
    "k2lsp.agent.loop",
    "k2lsp.model.client",
    "openai",  # the client imports it on first use
    "k2lsp.runs.runcopy",
    "k2lsp.tools.mcp.hub",
    "k2lsp.acp.turn",
)


def prewarm() -> None:
    """Import what the first prompt needs (the model client, the run copy, every tool) in a
    worker thread once `initialize` is answered, so the first turn does not pay for it."""
    import importlib

    try:
        for name in PREWARM:
            importlib.import_module(name)
        from k2lsp.tools import build_registry

        build_registry()
    except Exception as exc:  # the turn will import (and report) it again
        log.debug("prewarm: %s", exc)


def bad_params(message: str) -> RequestError:
    """An invalid-params error whose message is the readable reason (editors show it)."""
    return RequestError(-32602, message)


def _folder(cwd: str) -> str:
    path = Path(cwd)
    if not path.is_absolute() or not path.is_dir():
        raise bad_params(f"cwd must be an absolute path of an existing folder (got {cwd[:200]!r})")
    return str(path.resolve())


def _settings(root: Path, notes: list[str], *, require_key: bool = True) -> Any:
    from k2lsp.agent.budgets import with_editor_defaults
    from k2lsp.config.settings import load_settings

    settings = load_settings(root, require_key=require_key, notify=notes.append)
    with_editor_defaults(settings)
    return settings


def _state_dir(folder: str) -> Path:
    return Path(_settings(Path(folder), [], require_key=False).state_dir)


def client_servers(servers: list[Any], problems: list[str] | None = None) -> dict[str, Any]:
    """The client's `mcpServers` (stdio and HTTP) as `[mcp.servers]` entries; the others are
    named in `problems`."""
    from k2lsp.config.tables import McpServer

    out: dict[str, Any] = {}
    for server in servers:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(server.name))[:32] or "client"
        if getattr(server, "command", None):
            env = {e.name: e.value for e in getattr(server, "env", None) or []}
            out[name] = McpServer(command=server.command, args=list(server.args or []), env=env)
        elif getattr(server, "type", "") == "http":
            headers = {h.name: h.value for h in server.headers or []}
            out[name] = McpServer(url=server.url, headers=headers)
        elif problems is not None:
            kind = getattr(server, "type", "?")
            problems.append(f"MCP server {name!r}: the {kind} transport is not supported")
    return out
