"""Client + loop overhead per step, excluding the model.

A scripted 50-step run against the fake K2 server (real HTTP, real openai SDK), the server in
its own process, where every step calls a tool returning 200 KB of text. Per step we measure
the CPU time of the k2lsp process (so the model's work and the wait for it count for nothing):
building and sending the request, parsing the stream, running the tool call, capping and
redacting its output, events (redacted, JSONL to /dev/null), trajectory recording and
compaction, split into client, tool call and loop bookkeeping.

    .venv/bin/python bench/loop_overhead.py [--steps 50] [--kb 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import BaseModel

from k2lsp.agent.budgets import Budget
from k2lsp.agent.compaction import Ledger
from k2lsp.agent.events import Emitter
from k2lsp.agent.loop import AgentLoop
from k2lsp.agent.prompts import initial_messages
from k2lsp.agent.session import redacting
from k2lsp.agent.trajectory import Trajectory
from k2lsp.cli.render import JsonRenderer
from k2lsp.config.settings import Settings
from k2lsp.fake import server as fake_server
from k2lsp.fake.script import Reply
from k2lsp.model.client import K2Client
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import ToolContext, ToolRegistry, tool

MODEL = "kimi-k2-thinking"
_REASONING = "Let me look at the next part of the output and compare it with the last. " * 6


def _serve(steps: int, conn: Any, stop: Any) -> None:
    """In a separate process: the fake K2 host with a scripted `steps`-step run."""
    script = [
        Reply(reasoning=_REASONING, tool_calls=[("dump", {"part": i})], chunk_size=24)
        for i in range(steps - 1)
    ]
    script.append(Reply(reasoning="Done.", content="All parts read."))
    with fake_server.FakeK2Server(script, models=[MODEL]) as srv:
        conn.send(srv.base_url)
        stop.wait()


def _cpu() -> float:
    return time.process_time()  # this process only: the host's work is in another process


class TimedLoop(AgentLoop):
    """Records the CPU time of every step and of its parts (this process only)."""

    step_times: list[float]
    request_times: list[float]
    call_times: list[float]
    step_walls: list[float]

    async def _run_call(self, call: Any) -> None:
        t0 = _cpu()
        try:
            await super()._run_call(call)
        finally:
            self.call_times.append(_cpu() - t0)

    async def _request(self, step: int) -> Any:
        t0 = _cpu()
        try:
            return await super()._request(step)
        finally:
            self.request_times.append(_cpu() - t0)

    async def _step(self) -> None:
        t0, w0 = _cpu(), time.perf_counter()
        try:
            await super()._step()
        finally:
            self.step_times.append(_cpu() - t0)
            self.step_walls.append(time.perf_counter() - w0)


class PartArgs(BaseModel):
    """Which part to dump."""

    part: int


def registry(kb: int) -> ToolRegistry:
    """One tool returning `kb` KB of text."""
    reg = ToolRegistry()
    line = "x = compute_something(alpha, beta, gamma)  # a typical line of code\n"
    blob = (line * (kb * 1024 // len(line) + 1))[: kb * 1024]

    @tool("dump", PartArgs, writes="none", registry=reg)
    def dump(ctx: ToolContext, args: PartArgs) -> str:
        """Return a large text."""
        return f"part {args.part}\n" + blob

    return reg


async def bench(steps: int, kb: int, base_url: str) -> dict[str, Any]:
    """Run once against the host at `base_url`; per-step CPU figures in ms."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            provider="openai-compatible",
            base_url=base_url,
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
        loop.step_times, loop.request_times, loop.call_times, loop.step_walls = [], [], [], []
        await loop.run(initial_messages("read every part"))
        await client.aclose()
        trajectory.close()
        devnull.close()
    ms = [x * 1000 for x in loop.step_times]
    calls = [c * 1000 for c in loop.call_times]
    requests = [r * 1000 for r in loop.request_times]
    return {
        "cpu": ms,
        "wall": [w * 1000 for w in loop.step_walls],
        "client": requests,
        "calls": calls,
        "rest": [
            st - rq - (calls[i] if i < len(calls) else 0.0)
            for i, (st, rq) in enumerate(zip(ms, requests, strict=False))
        ],
        "compactions": loop.compactions,
    }


def run_with_host(steps: int, kb: int) -> dict[str, Any]:
    """Start the fake host in its own process, run the loop against it, stop the host."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    host = ctx.Process(target=_serve, args=(steps, child, stop), daemon=True)
    host.start()
    try:
        base_url = parent.recv()
        return asyncio.run(bench(steps, kb, base_url))
    finally:
        stop.set()
        host.join(10)


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
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--kb", type=int, default=200)
    args = p.parse_args()
    out = run_with_host(args.steps, args.kb)
    red = redaction_ms(args.kb)
    cpu, med = out["cpu"], statistics.median
    print(
        f"loop overhead, {len(cpu)} steps, tool output {args.kb} KB per step, "
        f"{out['compactions']} compaction(s); fake host in its own process"
    )
    print(
        f"  CPU per step in the k2lsp process (the model is elsewhere): min {min(cpu):.2f} / "
        f"median {med(cpu):.2f} / p90 {pct(cpu, 0.9):.2f} / max {max(cpu):.2f} ms"
    )
    print(
        f"  split (median CPU): K2 client (request build, openai SDK, HTTP, SSE parse) "
        f"{med(out['client']):.2f} ms; tool call (run + redact + cap + events) "
        f"{med(out['calls']):.2f} ms; loop bookkeeping (compaction check, history, trajectory, "
        f"usage/status events) {med(out['rest']):.2f} ms"
    )
    print(
        f"  bookkeeping + client, without the tool's own work: "
        f"{med([c + r for c, r in zip(out['client'], out['rest'], strict=False)]):.2f} ms "
        "(goal < 5 ms)"
    )
    print(f"  for reference, one k2lsp.redact.redact pass over {args.kb} KB alone: {red:.2f} ms")
    print(f"  wall per step incl. the model: median {med(out['wall']):.2f} ms")


if __name__ == "__main__":
    main()
