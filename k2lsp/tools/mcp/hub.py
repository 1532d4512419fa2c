"""Connections to MCP servers, kept open for a run or an ACP session.

The MCP SDK's transports are anyio task groups: they must be entered and left by one task. The
hub therefore owns a task that opens every connection, reports ready, holds them until `close`,
and leaves them in order; tool calls from other tasks go through the sessions' streams.

    hub = McpHub(settings.mcp.servers, cwd=repo, cap=settings.mcp.output_cap_chars)
    await hub.start()          # never raises: a server that fails is in hub.problems
    registry = base.extended(hub.tools())
    ...
    await hub.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from k2lsp.config.tables import McpServer
from k2lsp.redact import redact, register_secret
from k2lsp.tools.mcp.bridge import McpTool, make_tool

log = logging.getLogger(__name__)
MAX_TOOLS_PER_SERVER = 64


class McpHub:
    """Open MCP sessions to `servers` (name -> spec) and the tools they offer."""

    def __init__(self, servers: dict[str, McpServer], *, cwd: Path | None, cap: int = 30_000):
        self.servers = {n: s for n, s in servers.items() if s.enabled}
        self.cwd = cwd
        self.cap = cap
        self.problems: list[str] = []
        self._tools: list[McpTool] = []
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._errlog: Any = None  # the servers' stderr, redacted on its way to ours
        self._relay: Any = None  # the thread relaying it

    async def start(self) -> None:
        """Connect to every server (each within its `timeout_s`); failures go to `problems`."""
        for spec in self.servers.values():
            for value in (*spec.env.values(), *spec.headers.values()):
                register_secret(value)
        if not self.servers:
            self._ready.set()
            return
        self._errlog, self._relay = redacted_stderr()
        self._task = asyncio.create_task(self._serve(), name="k2lsp-mcp-hub")
        waiter = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the run or session went away while servers started
            await asyncio.shield(self.close())
            raise
        finally:
            waiter.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception():
            self.problems.append(f"MCP: {redact(str(self._task.exception()))}")

    def tools(self) -> list[McpTool]:
        """The tools of every connected server, in server order."""
        return list(self._tools)

    async def close(self) -> None:
        """Close every connection (stops stdio servers)."""
        self._closing.set()
        if self._task is not None and not self._ready.is_set():
            self._task.cancel()  # still connecting: its exit stack unwinds in its own task
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._task
        if self._errlog is not None:
            self._errlog.close()  # the relay thread ends at EOF once the servers are gone
            self._errlog = None
            await asyncio.to_thread(self._relay.join, 10)

    async def _serve(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            for name, spec in self.servers.items():
                sub = contextlib.AsyncExitStack()
                try:
                    async with asyncio.timeout(spec.timeout_s):
                        session = await _open(sub, spec, self.cwd, self._errlog)
                        found = await _list_tools(session)
                except Exception as exc:  # any failure of one server is reported, not fatal
                    with contextlib.suppress(Exception):
                        await sub.aclose()
                    why = "timed out" if isinstance(exc, TimeoutError) else _why(exc)
                    self.problems.append(f"MCP server {name!r} did not start: {why}")
                    continue
                stack.push_async_callback(sub.aclose)
                self._add(name, spec, session, found)
            self._ready.set()
            await self._closing.wait()

    def _add(self, name: str, spec: McpServer, session: Any, found: list[Any]) -> None:
        async def call(tool: str, args: dict[str, Any]) -> Any:
            return await session.call_tool(tool, args)

        taken = {t.name for t in self._tools}
        for remote in found[:MAX_TOOLS_PER_SERVER]:
            try:
                made = make_tool(
                    name,
                    remote,
                    call,
                    allow=spec.allow_tools,
                    cap=self.cap,
                    timeout_s=spec.timeout_s,
                )
            except ValueError as exc:
                self.problems.append(f"MCP tool {name}/{remote.name} skipped: {exc}")
                continue
            if made.name in taken:
                self.problems.append(f"MCP tool {name}/{remote.name} skipped: name clash")
                continue
            taken.add(made.name)
            self._tools.append(made)


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _why(exc.exceptions[0])
    return redact(f"{type(exc).__name__}: {exc}")[:300]


def redacted_stderr() -> tuple[Any, Any]:
    """A writable pipe whose lines reach our stderr redacted (MCP servers log what they like,
    tokens included), and the daemon thread relaying it until every writer closed it."""
    import os
    import threading

    from k2lsp.redact.boundary import safe_text

    read_fd, write_fd = os.pipe()

    def relay() -> None:
        with open(read_fd, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                sys.stderr.write(safe_text(line))

    thread = threading.Thread(target=relay, name="k2lsp-mcp-stderr", daemon=True)
    thread.start()
    return open(write_fd, "w", encoding="utf-8"), thread  # closed by McpHub.close


async def _open(
    stack: contextlib.AsyncExitStack, spec: McpServer, cwd: Path | None, errlog: Any = None
) -> Any:
    """An initialized `ClientSession` to `spec`, its contexts entered on `stack`."""
    from mcp.client.session import ClientSession

    if spec.command is not None:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=spec.command,
            args=list(spec.args),
            env=dict(spec.env) or None,
            cwd=spec.cwd or (str(cwd) if cwd else None),
        )
        read, write = await stack.enter_async_context(
            stdio_client(params, errlog=errlog or sys.stderr)
        )
    else:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        assert spec.url is not None
        http = await stack.enter_async_context(create_mcp_http_client(headers=dict(spec.headers)))
        read, write = await stack.enter_async_context(
            streamable_http_client(spec.url, http_client=http)
        )
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def _list_tools(session: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _page in range(20):
        from mcp import types

        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += list(page.tools)
        cursor = page.next_cursor
        if not cursor or len(tools) >= MAX_TOOLS_PER_SERVER:
            break
    return tools
