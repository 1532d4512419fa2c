"""The k2lsp language server: `create_server()` wires the handlers, `serve(argv)` runs it.

`k2lsp`, `k2lsp --stdio` (stdio, the default) and `k2lsp --tcp [--host H] --port N`.
Only pygls and lsprotocol are imported up front; the agent, the model client, git and
tree-sitter load when a run or a test detection first needs them, so `initialize` is fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from k2lsp import __version__
from k2lsp.server import protocol
from k2lsp.server.transport import SafeProtocol

if TYPE_CHECKING:
    from k2lsp.agent.events import Event
    from k2lsp.config.settings import Settings
    from k2lsp.server.actions import TestCache
    from k2lsp.server.config import EditorConfig
    from k2lsp.server.diagnostics import TestDiagnostics
    from k2lsp.server.runs import Run, RunRegistry

log = logging.getLogger(__name__)
DEFAULT_MAX_MESSAGE_MB = 64
Approve = Callable[[str, str], Awaitable[bool]]


class K2LanguageServer(LanguageServer):
    """pygls server plus the session state: configuration, runs, caches, diagnostics."""

    def __init__(self) -> None:
        super().__init__("k2lsp", __version__, protocol_cls=SafeProtocol)
        self.experimental_stream = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.init_options: object = None  # raw initializationOptions (plain JSON)
        self._config: EditorConfig | None = None
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_MB << 20
        self.trust_notices: set[tuple[str, str]] = set()  # (root, config hash) announced
        self.client_name = ""  # clientInfo.name from initialize
        self.last_change = 0.0  # time.monotonic() of the last didOpen/didChange/didClose
        self.watched: dict[str, list[str]] = {}  # uri -> its texts while a delivery lands

    # Transport: pygls' reader is replaced by the resynchronising one (k2lsp.server.transport).
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve over stdin/stdout."""
        from k2lsp.server.transport import serve_io

        serve_io(self, stdin, stdout)

    def start_tcp(self, host: str, port: int) -> None:
        """Serve TCP clients on host:port."""
        from k2lsp.server.transport import serve_tcp

        serve_tcp(self, host, port)

    # Session state, built on first use so that `initialize` imports as little as possible.
    @property
    def editor_config(self) -> EditorConfig:
        """The validated editor configuration (initializationOptions until configuration)."""
        if self._config is None:
            from k2lsp.server.config import parse_config

            self._config = parse_config(self.init_options)
        return self._config

    @editor_config.setter
    def editor_config(self, value: EditorConfig) -> None:
        self._config = value

    @cached_property
    def runs(self) -> RunRegistry:
        """Every run of this session."""
        from k2lsp.server.runs import RunRegistry

        return RunRegistry()

    @cached_property
    def test_cache(self) -> TestCache:
        """Detected test functions per open document."""
        from k2lsp.server.actions import TestCache

        return TestCache()

    @cached_property
    def test_diagnostics(self) -> TestDiagnostics:
        """Published test-failure diagnostics."""
        from k2lsp.server.diagnostics import TestDiagnostics

        return TestDiagnostics()

    def root(self) -> Path:
        """The workspace folder (UsageError when the editor opened no folder)."""
        from k2lsp.errors import UsageError

        root = self.workspace.root_path
        if not root:
            raise UsageError("no workspace folder is open; open your project folder first")
        return Path(root).resolve()

    def run_settings(self) -> Settings:
        """Settings for a new run: every configuration layer plus the editor's overrides, with
        the repository's sensitive keys only if it is trusted (k2lsp.server.workspace_trust),
        and the editor's default wall time when none is set (agent.budgets)."""
        from k2lsp.agent.budgets import with_editor_defaults
        from k2lsp.server.workspace_trust import run_settings

        settings = run_settings(self)
        with_editor_defaults(settings)
        return settings

    def wants_stream(self) -> bool:
        """Did the client opt in to `k2lsp/stream` notifications?"""
        return self.editor_config.options.stream_notifications or self.experimental_stream

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task kept alive until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """window/showMessage."""
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def overlay(self) -> dict[str, str]:
        """Open documents inside the workspace (relative path -> text): the run's start state."""
        from pygls.uris import to_fs_path

        root, out = self.root(), {}
        for uri, doc in list(self.workspace.text_documents.items()):
            path = to_fs_path(uri)
            if not path:
                continue
            try:
                out[Path(path).resolve().relative_to(root).as_posix()] = doc.source
            except ValueError:
                continue
        return out

    def approver(self, run: Run) -> Approve:
        """The run's `approve(kind, detail) -> bool`, asking with window/showMessageRequest."""
        loop = asyncio.get_running_loop()

        async def ask(kind: str, detail: str) -> bool:
            if kind in run.allowed:
                return True
            if self.editor_config.options.approvals == "policy":
                return False
            actions = [types.MessageActionItem(title=t) for t in protocol.APPROVAL_ACTIONS]
            params = types.ShowMessageRequestParams(
                type=types.MessageType.Warning,
                actions=actions,
                message=f"K2 run {run.id} asks to {kind}: {detail[:500]}",
            )
            try:
                answer = await self.window_show_message_request_async(params)
            except Exception as exc:
                log.warning("approval request failed: %s", exc)
                return False
            title = answer.title if answer is not None else protocol.DENY
            if title == protocol.APPROVE_RUN:
                run.allowed.add(kind)
            return title in (protocol.APPROVE_ONCE, protocol.APPROVE_RUN)

        async def approve(kind: str, detail: str) -> bool:
            if asyncio.get_running_loop() is loop:
                return await ask(kind, detail)
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(ask(kind, detail), loop)
            )

        return approve

    def on_event(self, run: Run, event: Event) -> None:
        """React to run events on the loop: test failures become diagnostics."""
        if event.type != "test_result":
            return
        failures = event.data.get("failures")
        if failures is None:
            last = run.request.state.get("last_test_result")
            failures = (
                last.get("failures") if isinstance(last, dict) else getattr(last, "failures", None)
            )
        if failures is None and int(event.data.get("failed") or 0):
            return  # failures without locations: nothing to point at
        self.test_diagnostics.publish(
            self,
            Path(run.request.repo).resolve(),
            list(failures or []),
            command=str(event.data.get("command") or ""),
        )


def create_server() -> K2LanguageServer:
    """A fully wired k2lsp language server (not started)."""
    from k2lsp.server import handlers

    server = K2LanguageServer()
    handlers.register(server)
    return server


def serve(argv: list[str] | None = None) -> int:
    """Run the language server over stdio (default) or TCP; returns the exit code."""
    parser = argparse.ArgumentParser(prog="k2lsp", description="Kimi K2 language server")
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (default)")
    parser.add_argument("--tcp", action="store_true", help="listen on a TCP port instead")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (with --tcp)")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level")
    parser.add_argument(
        "--max-message-mb",
        type=int,
        default=DEFAULT_MAX_MESSAGE_MB,
        help=f"largest LSP message body read, in MB (default {DEFAULT_MAX_MESSAGE_MB}); "
        "larger ones are skipped and answered with an error",
    )
    args = parser.parse_args(argv)
    if args.max_message_mb < 1:
        parser.error("--max-message-mb must be at least 1")
    if args.tcp and args.stdio:
        parser.error("choose one of --stdio and --tcp")
    if args.tcp and not args.port:
        parser.error("--tcp needs --port N")
    if args.port and not args.tcp:
        parser.error("--port is for --tcp; stdio needs no port")
    logging.basicConfig(
        stream=sys.stderr,
        level=str(args.log_level).upper(),
        format="k2lsp %(levelname)s %(name)s: %(message)s",
    )
    from k2lsp.redact.boundary import redact_log_handlers

    redact_log_handlers()
    logging.getLogger("pygls").setLevel(logging.WARNING)
    from k2lsp.server.failure import quiet_refusals

    logging.getLogger("pygls.protocol.json_rpc").addFilter(quiet_refusals)
    server = create_server()
    server.max_message_bytes = args.max_message_mb << 20
    if args.tcp:
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return 0
