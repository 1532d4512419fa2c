"""Client + loop overhead per step, excluding the model.

A scripted 50-step run against the fake K2 server (real HTTP, real openai SDK) where every step
calls a tool returning 200 KB of text. Per step we measure the wall time of the step and the
time the fake server spent answering the request (reading + parsing the body, validating,
streaming the reply: "the model"); the difference is what k2lsp itself costs: building and
sending the request, parsing the stream, running the tool call, capping/redacting its output,
events (redacted, JSONL to /dev/null), trajectory recording and compaction.

    .venv/bin/python bench/loop_overhead.py [--steps 50] [--kb 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel

from k2lsp.agent.budgets import Budget
from k2lsp.agent.compaction import Ledger
from k2lsp.agent.events import Emitter
from k2lsp.agent.loop import AgentLoop
from k2lsp.agent.prompts import initial_messages
from k2lsp.agent.trajectory import Trajectory
from k2lsp.cli_render import JsonRenderer
from k2lsp.config import Settings
from k2lsp.model import fake_server
from k2lsp.model.client import K2Client
from k2lsp.model.fake_script import Reply
from k2lsp.run import redacting
from k2lsp.tools.base import ToolContext, ToolRegistry, tool
from k2lsp.workspace import Workspace

MODEL = "kimi-k2-thinking"
SERVER_TIMES: list[float] = []


class TimedServer(fake_server.FakeK2Server):
    """The fake server, timing each POST (the model's share of a step)."""

    def start(self) -> str:
        """Start with a handler that records how long each POST took."""

        class Handler(fake_server._Handler):
            fake = self

            def do_POST(self) -> None:
                t0 = time.perf_counter()
                super().do_POST()
                SERVER_TIMES.append(time.perf_counter() - t0)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url


class TimedLoop(AgentLoop):
    """Records the wall time of every step."""

    step_times: list[float]
    request_times: list[float]
    call_times: list[float]

    async def _run_call(self, call: Any) -> None:
        t0 = time.perf_counter()
        try:
            await super()._run_call(call)
        finally:
            self.call_times.append(time.perf_counter() - t0)

    async def _request(self, step: int) -> Any:
        t0 = time.perf_counter()
        try:
            return await super()._request(step)
        finally:
            self.request_times.append(time.perf_counter() - t0)

    async def _step(self) -> None:
        t0 = time.perf_counter()
        try:
            await super()._step()
        finally:
            self.step_times.append(time.perf_counter() - t0)


class PartArgs(BaseModel):
    """Which part to dump."""

    part: int


def registry(kb: int) -> ToolRegistry:
    """One tool returning `kb` KB of text."""
    reg = ToolRegistry()
    line = "x = compute_something(alpha, beta, gamma)  # a typical line of code\n"
    blob = (line * (kb * 1024 // len(line) + 1))[: kb * 1024]

    @tool("dump", PartArgs, registry=reg)
    def dump(ctx: ToolContext, args: PartArgs) -> str:
        """Return a large text."""
        return f"part {args.part}\n" + blob

    return reg


async def bench(steps: int, kb: int) -> dict[str, Any]:
    """Run once; returns per-step overhead figures in ms."""
    reasoning = "Let me look at the next part of the output and compare it with the last. " * 6
    script = [
        Reply(reasoning=reasoning, tool_calls=[("dump", {"part": i})], chunk_size=24)
        for i in range(steps - 1)
    ]
    script.append(Reply(reasoning="Done.", content="All parts read."))
    with tempfile.TemporaryDirectory() as tmp, TimedServer(script, models=[MODEL]) as srv:
        settings = Settings(
            provider="openai-compatible",
            base_url=srv.base_url,
            model=MODEL,
            api_key="sk-bench-0000000000000000000000",
        )
        trajectory = Trajectory(Path(tmp) / "t.jsonl")
        devnull = open(os.devnull, "w")
        emitter = Emitter("bench", [redacting([trajectory.event_safe, JsonRenderer(devnull)])])
        ctx = ToolContext(workspace=Workspace(Path(tmp)), emitter=emitter, settings=settings)
        client = K2Client(settings)
        loop = TimedLoop(
            client,
            registry(kb),
            ctx,
            emitter,
            budget=Budget(max_steps=steps + 5),
            ledger=Ledger(goal="bench"),
            trajectory=trajectory,
        )
        loop.step_times, loop.request_times, loop.call_times = [], [], []
        SERVER_TIMES.clear()
        await loop.run(initial_messages("read every part"))
        await client.aclose()
        trajectory.close()
        devnull.close()
    overhead = [max(0.0, s - m) * 1000 for s, m in zip(loop.step_times, SERVER_TIMES, strict=False)]
    client = [
        max(0.0, r - m) * 1000 for r, m in zip(loop.request_times, SERVER_TIMES, strict=False)
    ]
    return {
        "overhead": overhead,
        "server": [m * 1000 for m in SERVER_TIMES],
        "client": client,
        "calls": [c * 1000 for c in loop.call_times],
        "rest": [
            (st - rq - (loop.call_times[i] if i < len(loop.call_times) else 0.0)) * 1000
            for i, (st, rq) in enumerate(zip(loop.step_times, loop.request_times, strict=False))
        ],
        "compactions": loop.compactions,
    }


def redaction_ms(kb: int) -> float:
    """Median time of one `redact` over a fresh `kb` KB tool output."""
    from k2lsp.redact import redact

    line = "x = compute_something(alpha, beta, gamma)  # a typical line of code\n"
    times = []
    for i in range(5):
        blob = f"{i}\n" + (line * (kb * 1024 // len(line) + 1))[: kb * 1024]
        t0 = time.perf_counter()
        redact(blob)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Parse flags, run, print figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--kb", type=int, default=200)
    args = p.parse_args()
    out = asyncio.run(bench(args.steps, args.kb))
    red = redaction_ms(args.kb)
    ov, srv = out["overhead"], out["server"]
    print(
        f"loop overhead, {len(ov)} steps, tool output {args.kb} KB per step, "
        f"{out['compactions']} compaction(s)"
    )
    print(
        f"  client+loop per step (excl. model): median {statistics.median(ov):.2f} ms, "
        f"p90 {pct(ov, 0.9):.2f} ms, max {max(ov):.2f} ms  (goal < 5 ms)"
    )
    med = statistics.median
    print(
        f"  split (medians): K2 client (request build, openai SDK, HTTP, SSE parse) "
        f"{med(out['client']):.2f} ms; tool call (run + redact + cap + events) "
        f"{med(out['calls']):.2f} ms; rest of the loop (compaction check, trajectory, "
        f"usage/status events) {med(out['rest']):.2f} ms"
    )
    print(f"  for reference, one k2lsp.redact.redact pass over {args.kb} KB alone: {red:.2f} ms")
    print(
        f"  fake model (server) per request:    median {statistics.median(srv):.2f} ms, "
        f"p90 {pct(srv, 0.9):.2f} ms"
    )


if __name__ == "__main__":
    main()
