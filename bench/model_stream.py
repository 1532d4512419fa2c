"""Client-side cost of streaming a K2 reply: k2lsp's raw-SSE client vs the bare openai SDK
iterator, same fake server, same reply, same run (compare the ratio, not absolute times).

    .venv/bin/python bench/model_stream.py [--runs 7] [--kb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from k2lsp.config.settings import Settings
from k2lsp.fake.server import FakeK2Server, Reply
from k2lsp.model.client import K2Client

USER = [{"role": "user", "content": "go"}]


def _reply(kb: int) -> Reply:
    text = ("reasoning about the code base, step by step. " * (kb * 1024 // 45))[: kb * 1024]
    calls = [("read_file", {"path": f"src/m{i}.py", "start": 1, "end": 400}) for i in range(3)]
    return Reply(reasoning=text, content="Reading three files.", tool_calls=calls, chunk_size=6)


async def _k2lsp(base: str) -> float:
    client = K2Client(
        Settings(
            provider="openai-compatible",
            base_url=base,
            model="kimi-k2-thinking",
            context_length=262_144,
        )
    )
    t = time.perf_counter()
    turn = await client.complete(USER, on_delta=lambda k, s: None)
    elapsed = time.perf_counter() - t
    assert len(turn.tool_calls) == 3
    await client.aclose()
    return elapsed


async def _bare_sdk(base: str) -> float:
    from openai import AsyncOpenAI

    sdk = AsyncOpenAI(base_url=base, api_key="x", max_retries=0)
    t = time.perf_counter()
    stream = await sdk.chat.completions.create(
        model="kimi-k2-thinking",
        messages=USER,
        stream=True,
        max_tokens=16_000,  # type: ignore[arg-type]
    )
    n = 0
    async for chunk in stream:
        n += len(chunk.choices)
    elapsed = time.perf_counter() - t
    await sdk.close()
    return elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--kb", type=int, default=20)
    args = ap.parse_args()
    with FakeK2Server([]) as srv:
        chunks = len(_reply(args.kb).reasoning or "") // 6
        ours, bare = [], []
        for _ in range(args.runs):
            srv.add(_reply(args.kb), _reply(args.kb))
            ours.append(await _k2lsp(srv.base_url))
            bare.append(await _bare_sdk(srv.base_url))
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(f"reply: {args.kb} KiB reasoning in ~{chunks} chunks + 3 streamed tool calls")
    print(f"k2lsp K2Client.complete   median {mo * 1000:8.1f} ms  ({chunks / mo:,.0f} chunks/s)")
    print(f"bare openai SDK iterator  median {mb * 1000:8.1f} ms  ({chunks / mb:,.0f} chunks/s)")
    print(f"ratio k2lsp / bare SDK: {mo / mb:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
