"""k2lsp's client against a REAL llama.cpp `llama-server`: what a self-hosting user sees.

Runs a 10-step tool conversation (k2lsp's real read-only tool list and system prompt; each step
appends the reply and a tool result, as the agent loop does) through a recording proxy and
prints:

- time to the first reasoning byte (and to the first byte of any kind): the small test model
  emits no reasoning, which is reported as such rather than invented;
- output tokens per second as the client sees them (first byte to end of stream) against the
  server's own `timings.predicted_per_second`, and the server's prompt tokens per second;
- the prefix-cache hit ratio: cached prompt tokens / prompt tokens over the run, from the
  server's `usage.prompt_tokens_details.cached_tokens` and from `timings.cache_n`.

Usage: python bench/host_bench.py [--steps 10] [--ctx 8192] [--max-tokens 64]
Uses the llama-server and model `.ci/llamacpp.sh` installs (see tests/llamacpp_server.py).
`--max-tokens` caps generation at the proxy so a run takes minutes on 2 cores; what k2lsp
sent is unchanged. Prints figures only; never fails a test run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from llamacpp_server import LlamaServer, RecordingProxy, find_llama  # noqa: E402

from k2lsp.agent.prompts import initial_messages  # noqa: E402
from k2lsp.config import Settings  # noqa: E402
from k2lsp.errors import ProviderError  # noqa: E402
from k2lsp.model.client import K2Client  # noqa: E402
from k2lsp.tools import build_registry  # noqa: E402

FILE_PAGE = "\n".join(f"{i:>5}  def helper_{i}(value):  return value * {i}" for i in range(12))


async def conversation(base_url: str, steps: int) -> list[dict[str, Any]]:
    """Run `steps` requests; per step: first reasoning/any byte and end times (seconds)."""
    client = K2Client(
        Settings(provider="llamacpp", base_url=base_url, model="k2-small", max_retries=0)
    )  # no retries: each step is one request, so the server's timings match the client's
    # the read-only tool set and an ask run keep 10 steps inside the small model's 8k window
    schemas = [t.schema() for t in build_registry().tools(read_only=True)]
    messages = initial_messages("Where is the average computed?", mode="ask", read_only=True)
    out = []
    try:
        for step in range(steps):
            mark: dict[str, float] = {}
            start = time.monotonic()

            def on_delta(
                kind: str, text: str, mark: dict[str, float] = mark, start: float = start
            ) -> None:
                now = time.monotonic() - start
                mark.setdefault("first_byte", now)
                if kind == "reasoning":
                    mark.setdefault("first_reasoning", now)

            try:
                turn = await client.complete(messages, schemas, on_delta=on_delta)
                text, completion = turn.content, turn.usage.completion_tokens
            except ProviderError:  # the tiny model's text is not a usable K2 reply
                text, completion, mark["malformed"] = None, 0, 1.0
            mark["end"] = time.monotonic() - start
            out.append({**mark, "completion": completion})
            call_id = f"functions.read_file:{step}"
            messages.append(
                {
                    "role": "assistant",
                    "content": text or "(no text)",
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": "read_file",
                                "arguments": f'{{"path": "src/mod{step}.py"}}',
                            },
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": FILE_PAGE})
    finally:
        await client.aclose()
    return out


def report(steps: list[dict[str, Any]], proxy: RecordingProxy) -> None:
    """Print the figures."""
    chats = [e for e in proxy.chats() if e.status == 200]
    reasoning = [s["first_reasoning"] for s in steps if "first_reasoning" in s]
    first = [s["first_byte"] for s in steps if "first_byte" in s]
    bad = sum(1 for s in steps if "malformed" in s)
    print(f"steps: {len(steps)} ({len(chats)} answered requests, {bad} unusable replies)")
    if reasoning:
        print(f"time to first reasoning byte: median {statistics.median(reasoning):.2f} s")
    else:
        print("time to first reasoning byte: n/a - the model sent no reasoning in any step")
    if first:
        print(f"time to first byte (any delta): median {statistics.median(first):.2f} s")
    # client side: the server's completion count over the time the client saw the stream run
    served = [e.usage["completion_tokens"] if e.usage else 0 for e in chats]
    client_tps = [
        n / (s["end"] - s["first_byte"])
        for s, n in zip(steps, served, strict=False)
        if "first_byte" in s and s["end"] > s["first_byte"] and n > 1
    ]
    timings = [e.timings for e in chats if e.timings]
    server_tps = [t["predicted_per_second"] for t in timings if t.get("predicted_n", 0) > 1]
    prompt_tps = [t["prompt_per_second"] for t in timings if t.get("prompt_n", 0) > 0]
    if client_tps and server_tps:
        c, s = statistics.median(client_tps), statistics.median(server_tps)
        print(
            f"output tokens/s: client {c:.1f}, server timings {s:.1f} (client/server {c / s:.2f})"
        )
    if prompt_tps:
        print(f"server prompt processing: median {statistics.median(prompt_tps):.1f} tokens/s")
    usages = [e.usage for e in chats if e.usage]
    prompt = sum(u["prompt_tokens"] for u in usages)
    cached = sum((u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) for u in usages)
    cache_n = sum(t.get("cache_n", 0) for t in timings)
    prompt_n = sum(t.get("prompt_n", 0) for t in timings)
    if prompt:
        print(f"prefix-cache hit ratio (usage): {cached}/{prompt} = {cached / prompt:.1%}")
    if cache_n + prompt_n:
        ratio = cache_n / (cache_n + prompt_n)
        print(f"prefix-cache hit ratio (timings cache_n): {ratio:.1%}")
    later = usages[1:]
    if later:
        lp = sum(u["prompt_tokens"] for u in later)
        lc = sum((u.get("prompt_tokens_details") or {}).get("cached_tokens", 0) for u in later)
        print(f"  after the first step: {lc}/{lp} = {lc / max(1, lp):.1%}")


def main() -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ctx", type=int, default=8192, help="llama.cpp caps it at n_ctx_train")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    paths = find_llama()
    if paths is None:
        print("llama-server is not installed (bash .ci/test installs it); nothing measured")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        # the model's own chat template: with K2's template llama.cpp's K2 output parser
        # answers HTTP 500 to the tiny model's free text, and no timings come back
        plain = replace(paths, template=None)
        with LlamaServer(plain, ctx=args.ctx, log=log, alias="k2-small") as srv:
            proxy = RecordingProxy(srv.port)
            proxy.max_tokens_cap = args.max_tokens
            print(f"llama-server {paths.server.name}, model {paths.model.name}, ctx {args.ctx}")
            try:
                steps = asyncio.run(conversation(proxy.base_url, args.steps))
                report(steps, proxy)
            finally:
                proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
