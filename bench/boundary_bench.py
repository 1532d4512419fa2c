"""Cost of the security boundaries added in front of the LSP wire.

    .venv/bin/python bench/boundary_bench.py [--n 2000]

1. Redaction boundary: time per outgoing message for `k2lsp.redact.boundary.lsp_body` on the shapes
   the server sends most (a k2lsp/stream batch of reasoning deltas, a window/logMessage, a
   tool_result of 20 KB, a $/progress report, an applyEdit of a 200 KB file whose text is not
   scanned), next to the JSON encoding pygls does anyway (json.dumps of the same message).
   The ratio compares the boundary with that encoding; for applyEdit the boundary column is the
   whole send (redacted label + encoding).
2. Framing: throughput of `FrameParser` on a stream of 10,000 small messages fed in 64 KB
   chunks, against pygls' own per-line reader loop on the same bytes (a BytesIO, no I/O), and
   the time to skip a 64 MB oversized body.

Prints figures only; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from k2lsp.redact import register_secret
from k2lsp.redact.boundary import lsp_body, lsp_message
from k2lsp.server.framing import FrameParser

KEY = "sk-bench-boundary-0123456789abcdefghijkl"


def _messages() -> dict[str, dict[str, Any]]:
    text = "Checking how add behaves with 2 and 3; the test expects 5. " * 6
    events = [
        {"type": "reasoning", "run_id": "r1", "seq": i, "ts": 1.0, "text": text} for i in range(8)
    ]
    big = "".join(f"line {i}: value = compute({i}) + offset\n" for i in range(500))
    doc = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(7000))
    return {
        "stream batch (8 deltas)": {
            "jsonrpc": "2.0",
            "method": "k2lsp/stream",
            "params": {"runId": "r1", "events": events},
        },
        "logMessage": {
            "jsonrpc": "2.0",
            "method": "window/logMessage",
            "params": {"type": 4, "message": "[k2lsp r1] thinking: " + text},
        },
        "tool_result 20 KB": {
            "jsonrpc": "2.0",
            "method": "k2lsp/stream",
            "params": {"runId": "r1", "events": [{"type": "tool_result", "text": big}]},
        },
        "$/progress": {
            "jsonrpc": "2.0",
            "method": "$/progress",
            "params": {"token": "k2lsp-r1", "value": {"kind": "report", "message": "step 3"}},
        },
        f"applyEdit {len(doc) // 1000} KB": {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "workspace/applyEdit",
            "params": {"label": "K2: Task", "edit": {"changes": {"file:///a.py": [doc]}}},
        },
    }


def _time(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


def bench_redaction(n: int) -> None:
    register_secret(KEY)
    print(f"{'message':<26} {'boundary µs':>12} {'json.dumps µs':>14} {'ratio':>7}")
    for name, msg in _messages().items():
        reps = max(20, n // (1 + len(json.dumps(msg)) // 2000))
        body = json.dumps(msg)
        if msg.get("method") == "workspace/applyEdit":  # the server's path for it
            cost = _time(lambda m=msg: json.dumps(lsp_message(m)), reps)  # type: ignore[misc]
        else:
            cost = _time(lambda b=body: lsp_body(b), reps)  # type: ignore[misc]
        dump = _time(lambda m=msg: json.dumps(m), reps)  # type: ignore[misc]
        print(f"{name:<26} {cost * 1e6:>12.1f} {dump * 1e6:>14.1f} {cost / dump:>6.2f}x")


def _frame(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def bench_framing() -> None:
    msgs = [
        {"jsonrpc": "2.0", "id": i, "method": "textDocument/codeAction", "params": {"n": i}}
        for i in range(10_000)
    ]
    data = b"".join(_frame(m) for m in msgs)
    t0 = time.perf_counter()
    parser, got = FrameParser(), 0
    for i in range(0, len(data), 65536):
        got += len(parser.feed(data[i : i + 65536]))
    ours = time.perf_counter() - t0
    assert got == len(msgs)
    ours_rate = len(msgs) / ours

    from pygls.io_ import run

    class Proto:
        count = 0

        def structure_message(self, d: Any) -> Any:
            return d

        def handle_message(self, m: Any) -> None:
            Proto.count += 1

    t0 = time.perf_counter()
    asyncio.run(_maybe(run(threading.Event(), io.BytesIO(data), Proto())))  # type: ignore[arg-type]
    theirs = time.perf_counter() - t0
    print(
        f"framing: {ours_rate:,.0f} msg/s (k2lsp FrameParser incl. json) vs "
        f"{Proto.count / theirs:,.0f} msg/s (pygls reader incl. json); ratio "
        f"{theirs / ours:.2f}x of pygls' rate"
    )
    huge = FrameParser(max_body=1 << 20)
    chunk = b"x" * 65536
    t0 = time.perf_counter()
    huge.feed(b"Content-Length: %d\r\n\r\n" % (64 << 20))
    for _ in range((64 << 20) // len(chunk)):
        huge.feed(chunk)
    print(f"skip a 64 MB oversized body: {(time.perf_counter() - t0) * 1e3:.1f} ms, held ≤ 4 KB")


async def _maybe(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def main() -> None:
    """Print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="repetitions for small messages")
    args = p.parse_args()
    bench_redaction(args.n)
    bench_framing()


if __name__ == "__main__":
    main()
