"""A scripted fake K2 host: a real threaded HTTP server on 127.0.0.1 speaking the OpenAI-compatible
Chat Completions protocol as K2 hosts do (SSE `data: {...}` events ... `data: [DONE]`).

    srv = FakeK2Server([Reply(reasoning="think", tool_calls=[("read_file", {"path": "a.py"})]),
                        Reply(reasoning="ok", content="Done.")], models=["kimi-k2-thinking"])
    base_url = srv.start()        # http://127.0.0.1:PORT/v1 (also a context manager)
    srv.add(Fault.http(429, "engine_overloaded_error", "busy"))
    srv.requests                  # every POST /chat/completions body, in order
    srv.stop()

Each POST consumes the next script item (a Reply or a Fault); when the script runs out the server
answers HTTP 500 "fake K2: script exhausted". With `validate=True` (default) requests are checked
like a real host (see fake_validate) and rejected with HTTP 400 without consuming the script.
`python -m k2lsp.fake.server --script F.json [--port N]` serves a JSON script and prints
the base URL as the first stdout line. `host=` (`--host`) imitates a self-hosted server's
shapes: llama.cpp, vLLM, SGLang, Ollama or LM Studio (see fake_hosts). The script is a JSON
list; objects with a `fault` key are faults
(`{"fault": "http", "status": 429, "type": "engine_overloaded_error", "message": "…"}`,
`{"fault": "cut", "after_chunks": 3}`, `{"fault": "reset"}`), the rest are Reply fields
(`{"reasoning": "…", "tool_calls": [["read_file", {"path": "a.py"}]], "content": "…"}`).
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from k2lsp.fake.hosts import (
    HOST_MODES,
    HostError,
    check_host_request,
    model_entry,
    native_get,
    native_post,
)
from k2lsp.fake.script import Fault, Renderer, Reply, ScriptItem
from k2lsp.fake.streams import PrefixCache, Routes
from k2lsp.fake.validate import _count_calls, check_request, prompt_estimate

__all__ = ["FakeK2Server", "Fault", "Reply"]

DEFAULT_CONTEXT = 262_144


class FakeK2Server:
    """The scripted server; thread-safe; records what clients sent."""

    def __init__(
        self,
        script: list[ScriptItem] | None = None,
        *,
        models: list[str | dict[str, Any]] | None = None,
        reasoning_field: str = "reasoning_content",
        usage: str = "choice",
        validate: bool = True,
        context_limit: int | None = None,
        port: int = 0,
        host: str = "moonshot",
        api_key: str | None = None,
        prefix_cache: str = "last",
    ) -> None:
        if host not in HOST_MODES:
            raise ValueError(f"unknown host mode {host!r}; choose one of {HOST_MODES}")
        self.host = host  # which server to imitate (see fake_hosts)
        self.api_key = api_key  # when set, any other Bearer token gets a 401 (as a real host)
        self.script: list[ScriptItem] = list(script or [])
        self.models = models
        self.reasoning_field = reasoning_field
        self.usage = usage
        self.validate = validate
        self.context_limit = context_limit
        self.port = port
        self.requests: list[dict[str, Any]] = []
        self.responder: Callable[[dict[str, Any]], ScriptItem] | None = None
        self.request_times: list[float] = []  # time.monotonic() when each request arrived
        self.auth: list[bool] = []  # whether each request carried a Bearer token (never its value)
        self.missing_max_tokens: list[int] = []  # indexes of requests sent without max_tokens
        self.rejected: list[tuple[int, str]] = []  # (request index, 400 message)
        self.model_list_calls = 0
        self.disconnects = 0
        self.held = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.cache = PrefixCache(prefix_cache)  # "shared": a host-wide prefix cache
        self.routes = Routes()  # `srv.routes.add(marker, *items)`: scripts by marker
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        """Start serving in a daemon thread; returns the base URL (…/v1)."""
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL clients use."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stop(self) -> None:
        """Stop serving and release any held stream."""
        self.released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeK2Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # scripting -------------------------------------------------------------------------------
    def add(self, *items: ScriptItem) -> None:
        """Append replies or faults to the script."""
        with self._lock:
            self.script.extend(items)

    def release(self) -> None:
        """Let held streams finish."""
        self.released.set()

    def wait_held(self, timeout: float = 30.0) -> bool:
        """Block until a stream is being held (for cancellation tests)."""
        return self.held.wait(timeout)

    @property
    def remaining(self) -> int:
        """How many script items are not consumed yet."""
        with self._lock:
            return len(self.script)

    def model_entries(self) -> list[dict[str, Any]]:
        """The GET /models data list."""
        out = []
        for m in self.models or ["kimi-k2-thinking"]:
            if self.host != "moonshot" and isinstance(m, str):
                out.append(model_entry(self.host, m, self.context_limit or DEFAULT_CONTEXT))
                continue
            entry: dict[str, Any] = {"id": m} if isinstance(m, str) else dict(m)
            entry.setdefault("object", "model")
            entry.setdefault("created", 1762387200)
            entry.setdefault("owned_by", "moonshot")
            entry.setdefault("context_length", self.context_limit or DEFAULT_CONTEXT)
            entry.setdefault(
                "supports_reasoning", "thinking" in entry["id"] or "k2." in entry["id"]
            )
            out.append(entry)
        return out

    @property
    def window(self) -> int:
        """The context window the imitated host reports."""
        return self.context_limit or DEFAULT_CONTEXT

    def model_ids(self) -> list[str]:
        """The ids GET /models lists."""
        return [
            m if isinstance(m, str) else str(m["id"]) for m in self.models or ["kimi-k2-thinking"]
        ]

    def _admit(
        self, body: dict[str, Any], authed: bool
    ) -> tuple[int, ScriptItem | HostError | str, int]:
        """Record a request; return (index, item or 400/404 message, cached-token estimate)."""
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.request_times.append(time.monotonic())
            self.auth.append(authed)
            if "max_tokens" not in body and "max_completion_tokens" not in body:
                self.missing_max_tokens.append(index)
            cached = self.cache.cached_tokens(body)
            ids = [m if isinstance(m, str) else m["id"] for m in self.models or []]
            if self.models is not None and body.get("model") not in ids:
                return index, "404", cached
            host_err = check_host_request(self.host, body, self.context_limit)
            if host_err is not None:
                self.rejected.append((index, json.dumps(host_err.body)))
                return index, host_err, cached
            limit = self.context_limit if self.host == "moonshot" else None
            err = check_request(body, limit) if self.validate else None
            if err:
                self.rejected.append((index, err))
                return index, err, cached
            queue = self.routes.pick(body, self.script)
            if not queue:  # the script is out: a responder (body -> next item) or exhausted
                return index, (self.responder(body) if self.responder else "exhausted"), cached
            return index, queue.pop(0), cached


class _Handler(BaseHTTPRequestHandler):
    """One HTTP exchange; streams with chunked transfer encoding over HTTP/1.1."""

    fake: FakeK2Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # real hosts flush each SSE event; no 40 ms Nagle stalls

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log."""

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, type_: str, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": type_}})

    def do_GET(self) -> None:
        """GET /v1/models."""
        fake = self.fake
        if not self._authorized():
            return
        native = native_get(fake.host, self.path, fake.model_ids(), fake.window)
        if native is not None:
            self._json(200, native)
        elif self.path.rstrip("/").endswith("/models"):
            fake.model_list_calls += 1
            self._json(200, {"object": "list", "data": fake.model_entries()})
        else:
            self._error(404, "resource_not_found_error", f"no route {self.path}")

    def _authorized(self) -> bool:
        """False (after answering 401) when a key is required and another one was sent."""
        want = self.fake.api_key
        if want is None or self.headers.get("Authorization") == f"Bearer {want}":
            return True
        self._error(401, "invalid_authentication_error", "Invalid Authentication")
        return False

    def do_POST(self) -> None:
        """POST /v1/chat/completions."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self._authorized():
            return
        try:
            native = native_post(
                self.fake.host, self.path, json.loads(raw or b"{}"), self.fake.window
            )
        except ValueError:
            native = None
        if native is not None:
            self._json(200, native)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._error(404, "resource_not_found_error", f"no route {self.path}")
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "invalid_request_error", "Invalid request: body is not JSON")
            return
        authed = self.headers.get("Authorization", "").startswith("Bearer ")
        _index, item, cached = self.fake._admit(body, authed)
        if item == "404":
            msg = f"Not found the model {body.get('model')} or Permission denied"
            self._error(404, "resource_not_found_error", msg)
        elif item == "exhausted":
            self._error(500, "server_error", "fake K2: script exhausted")
        elif isinstance(item, HostError):
            self._json(item.status, item.body)
        elif isinstance(item, str):
            self._error(400, "invalid_request_error", item)
        elif isinstance(item, Fault):
            self._fault(item, body, cached)
        else:
            self._reply(item, body, cached)

    def _renderer(self, reply: Reply, body: dict[str, Any]) -> Renderer:
        return Renderer(
            reply,
            model=str(body.get("model", "")),
            first_n=_count_calls(body),
            field=self.fake.reasoning_field,
            usage=self.fake.usage,
        )

    def _reply(self, reply: Reply, body: dict[str, Any], cached: int) -> None:
        r = self._renderer(reply, body)
        usage = r.usage(prompt_estimate(body), cached)
        if not body.get("stream"):
            self._json(200, r.completion(usage))
            return
        self._stream(r.chunks(usage), reply, done=True)

    def _fault(self, fault: Fault, body: dict[str, Any], cached: int) -> None:
        if fault.kind == "http":
            self._json(fault.status, fault.error_body(), fault.headers)
        elif fault.kind == "reset":
            self._reset()
        else:
            assert fault.reply is not None
            r = self._renderer(fault.reply, body)
            chunks = r.chunks(r.usage(prompt_estimate(body), cached))[: fault.after_chunks]
            if fault.kind == "stream_error":
                err = {"message": fault.message, "type": fault.type, "code": fault.status}
                choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
                chunks.append(
                    {
                        "id": r.id,
                        "object": "chat.completion.chunk",
                        "error": err,
                        "choices": [choice],
                    }
                )
            self._stream(chunks, fault.reply, done=False, abrupt=fault.abrupt)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(
        self, chunks: list[dict[str, Any]], reply: Reply, *, done: bool, abrupt: bool = False
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for n, chunk in enumerate(chunks):
                if n and reply.delay_s:
                    time.sleep(reply.delay_s)
                self._send_chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if n == 0 and reply.hold and not self._hold():
                    return
            if abrupt:
                self._reset()
                return
            if done:
                self._send_chunk(b"data: [DONE]\n\n")
            self._send_chunk(b"")
        except OSError:
            self.fake.disconnects += 1
            self.close_connection = True

    def _hold(self) -> bool:
        """Stall with SSE comments until released; False when the client went away."""
        self.fake.held.set()
        while not self.fake.released.wait(0.1):
            try:
                self._send_chunk(b": keep-alive\n\n")
            except OSError:
                self.fake.disconnects += 1
                self.close_connection = True
                return False
        return True


if __name__ == "__main__":
    from k2lsp.fake.cli import main

    sys.exit(main())
