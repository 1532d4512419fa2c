"""An ACP client for the tests and the bench: the SDK's client side with an editor's fs
(unsaved buffers, writes recorded instead of saved) and scripted permission answers."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acp import schema

from tests.lsp_fixtures import server_env

AGENT_CMD = (sys.executable, "-m", "k2lsp", "acp")
MCP_SERVER = str(Path(__file__).with_name("mcp_demo_server.py"))


class EditorClient:
    """What an agent panel does: shows updates, answers permissions, serves its buffers."""

    def __init__(self, buffers: dict[str, str] | None = None, answers: list[str] | None = None):
        self.buffers = dict(buffers or {})  # absolute path -> unsaved text
        self.answers = list(answers or [])  # option ids, in order; empty: allow_once
        self.updates: list[tuple[str, Any, float]] = []  # (session id, update, monotonic time)
        self.permissions: list[Any] = []
        self.writes: list[tuple[str, str]] = []
        self.reads: list[str] = []
        self.on_permission: Callable[[Any], None] | None = None  # e.g. the user types meanwhile

    async def session_update(self, session_id: str, update: Any, **_: Any) -> None:
        self.updates.append((session_id, update, time.monotonic()))

    async def request_permission(
        self, session_id: str, tool_call: Any, options: list[Any], **_: Any
    ) -> schema.RequestPermissionResponse:
        self.permissions.append(tool_call)
        if self.on_permission is not None:
            self.on_permission(tool_call)
        choice = self.answers.pop(0) if self.answers else "allow_once"
        if choice == "cancelled":  # what a client answers after the user cancelled the turn
            return schema.RequestPermissionResponse(
                outcome=schema.DeniedOutcome(outcome="cancelled")
            )
        outcome = schema.AllowedOutcome(outcome="selected", option_id=choice)
        return schema.RequestPermissionResponse(outcome=outcome)

    async def read_text_file(self, session_id: str, path: str, **_: Any) -> Any:
        self.reads.append(path)
        if path in self.buffers:
            return schema.ReadTextFileResponse(content=self.buffers[path])
        return schema.ReadTextFileResponse(content=Path(path).read_text(encoding="utf-8"))

    async def write_text_file(self, session_id: str, path: str, content: str, **_: Any) -> None:
        self.writes.append((path, content))
        self.buffers[path] = content

    def kinds(self) -> list[str]:
        """The `sessionUpdate` kind of every update so far."""
        return [u.session_update for _, u, _ in self.updates]

    def of(self, kind: str) -> list[Any]:
        """The updates of one kind."""
        return [u for _, u, _ in self.updates if u.session_update == kind]

    def on_connect(self, conn: Any) -> None:
        pass


def agent_env(base_url: str, home: Path) -> dict[str, str]:
    """The agent process's environment: the fake K2 host, a private home, no sandbox."""
    env = server_env(base_url, home)
    env["K2LSP_SANDBOX"] = "none"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")) if p
    )
    return env


def client_caps() -> schema.ClientCapabilities:
    """An editor that offers its buffers for reading and writing."""
    fs = schema.FileSystemCapabilities(read_text_file=True, write_text_file=True)
    return schema.ClientCapabilities(fs=fs, terminal=False)


async def until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait until `check()` holds (AssertionError after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
