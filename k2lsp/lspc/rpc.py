"""JSON-RPC 2.0 over a child's stdin/stdout with LSP framing (`Content-Length` headers).

One reader thread parses frames: responses complete the waiting request, server requests
(`workspace/configuration`, `client/registerCapability`, progress creation...) get a harmless
answer at once, notifications go to `on_notify`. Every call has a timeout; a dead server fails
every pending and later call with `LspError` instead of hanging the run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import IO, Any

from k2lsp.errors import K2lspError

log = logging.getLogger(__name__)

MAX_FRAME = 64 * 1024 * 1024  # a hostile server must not make us allocate without bound


class LspError(K2lspError):
    """A language server failed, timed out, or answered with an error."""


class Connection:
    """A started language server process and its message channel."""

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        on_notify: Callable[[str, Any], None] | None = None,
    ) -> None:
        log_path = os.environ.get("K2LSP_LSP_LOG")  # a server's stderr, for debugging it
        stderr: Any = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as exc:
            raise LspError(f"cannot start language server {argv[0]!r}: {exc}") from None
        finally:
            if log_path:
                stderr.close()
        self.on_notify = on_notify
        self._next = 0
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._dead: str | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name="lsp-reader")
        self._reader.start()

    # ---- sending --------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
        stdin = self.proc.stdin
        if stdin is None or self._dead:
            raise LspError(f"language server is not running ({self._dead or 'no stdin'})")
        with self._write_lock:
            try:
                stdin.write(frame)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                self._fail(f"write failed: {exc}")
                raise LspError(f"language server stopped: {exc}") from None

    def request(self, method: str, params: Any, timeout: float = 60.0) -> Any:
        """Send a request and wait for its result (LspError on error, death or timeout)."""
        with self._lock:
            self._next += 1
            ident = self._next
            fut: Future[Any] = Future()
            self._pending[ident] = fut
        self._send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(ident, None)
            self.notify("$/cancelRequest", {"id": ident})
            raise LspError(
                f"language server did not answer {method} within {timeout:.0f} s"
            ) from None

    def notify(self, method: str, params: Any) -> None:
        """Send a notification."""
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    # ---- receiving ------------------------------------------------------------------------
    def _read_loop(self) -> None:
        out = self.proc.stdout
        assert out is not None
        try:
            while True:
                message = _read_frame(out)
                if message is None:
                    break
                self._dispatch(message)
        except Exception as exc:  # a garbled stream ends the connection, never the run
            log.debug("lsp reader stopped: %s", exc)
            self._fail(f"bad message from server: {exc}")
            return
        self._fail("the language server exited")

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" in message:  # a request from the server
            if self.on_notify is not None and message["method"] == "window/workDoneProgress/create":
                self.on_notify(str(message["method"]), message.get("params"))
            self._send_quiet({"jsonrpc": "2.0", "id": message["id"], "result": _answer(message)})
        elif "id" in message:
            with self._lock:
                fut = (
                    self._pending.pop(message["id"], None)
                    if isinstance(message["id"], int)
                    else None
                )
            if fut is None:
                return
            if "error" in message:
                err = message["error"] if isinstance(message["error"], dict) else {}
                fut.set_exception(
                    LspError(f"language server error: {str(err.get('message'))[:300]}")
                )
            else:
                fut.set_result(message.get("result"))
        elif "method" in message and self.on_notify is not None:
            try:
                self.on_notify(str(message["method"]), message.get("params"))
            except Exception as exc:  # a handler bug must not stop the reader
                log.debug("lsp notification handler failed: %s", exc)

    def _send_quiet(self, message: dict[str, Any]) -> None:
        try:
            self._send(message)
        except LspError:
            pass

    def _fail(self, why: str) -> None:
        with self._lock:
            if self._dead is None:
                self._dead = why
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(LspError(f"language server stopped: {why}"))

    @property
    def alive(self) -> bool:
        """Is the server still running and talking?"""
        return self._dead is None and self.proc.poll() is None

    def close(self, timeout: float = 5.0) -> None:
        """Polite shutdown/exit, then kill the process group if it lingers."""
        if self.alive:
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
            except LspError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._fail("closed")


def _answer(message: dict[str, Any]) -> Any:
    """What a client without settings answers a server request."""
    if message.get("method") == "workspace/configuration":
        items = (message.get("params") or {}).get("items") or []
        return [None for _ in items] if isinstance(items, list) else []
    return None


def _read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """One framed JSON message, or None at end of stream."""
    length = -1
    while True:
        line = stream.readline(8192)
        if not line:
            return None
        line = line.strip()
        if not line:
            if length >= 0:
                break
            continue
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            if not 0 <= length <= MAX_FRAME:
                raise ValueError(f"frame of {length} bytes")
    body = stream.read(length)
    if len(body) < length:
        return None
    obj = json.loads(body)
    if not isinstance(obj, dict):
        raise ValueError("message is not an object")
    return obj
