"""Time to the first `agent_thought_chunk` after `session/prompt` in `k2lsp acp` (issue 17).

    .venv/bin/python bench/acp_first_thought.py [--runs 10]

One `k2lsp acp` process over stdio, driven by the ACP SDK's client side; the model is the
scripted fake K2 host answering at once (its first reasoning delta leaves as soon as the request
arrives), so the figures are k2lsp's own: `before model` = prompt sent -> request at the host
(prompt parsing, settings, run copy, sandbox `none`, tools, request build); `after model` =
request at the host -> thought chunk at the client (SSE parsing, redaction, event -> update,
JSON-RPC). Also printed: spawn -> `initialize` answered, and `session/new`. A fresh session per
run (a fresh run copy each time), in a git repository of a few files.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acp import spawn_agent_process, text_block

from k2lsp.fake.server import FakeK2Server, Reply
from tests.acp_helpers import AGENT_CMD, EditorClient, agent_env, client_caps, until
from tests.git_helpers import make_repo


def _row(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{name:<34} min {ms[0]:8.1f}  median {statistics.median(ms):8.1f}  max {ms[-1]:8.1f} ms"


def _model_thought(update: object) -> bool:
    """A thought chunk of the model (not k2lsp's own `[k2lsp] ...` preflight note)."""
    if getattr(update, "session_update", "") != "agent_thought_chunk":
        return False
    return not str(getattr(getattr(update, "content", None), "text", "")).startswith("[k2lsp]")


async def measure(runs: int) -> dict[str, list[float]]:
    """Spawn one agent and time `runs` prompts; the figures in seconds."""
    out: dict[str, list[float]] = {k: [] for k in ("init", "new", "total", "before", "after")}
    fake = FakeK2Server([], models=["kimi-k2-thinking"])
    fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="k2lsp-acp-bench-") as tmp:
            files = {f"pkg/mod{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(20)}
            proj = make_repo(Path(tmp) / "proj", files)
            editor = EditorClient()
            env = agent_env(fake.base_url, Path(tmp) / "home")
            t0 = time.monotonic()
            async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _):
                await conn.initialize(protocol_version=1, client_capabilities=client_caps())
                out["init"].append(time.monotonic() - t0)
                for i in range(runs):
                    fake.add(Reply(reasoning="Thinking about it.", content="ok"))
                    t1 = time.monotonic()
                    sid = (await conn.new_session(cwd=str(proj), mcp_servers=[])).session_id
                    out["new"].append(time.monotonic() - t1)
                    seen, asked_before = len(editor.updates), len(fake.request_times)
                    t2 = time.monotonic()
                    turn = asyncio.ensure_future(
                        conn.prompt(session_id=sid, prompt=[text_block(f"explain f{i}")])
                    )

                    def thoughts(seen: int = seen) -> list[float]:
                        return [t for _, u, t in editor.updates[seen:] if _model_thought(u)]

                    await until(lambda: bool(thoughts()), timeout=120)
                    first = thoughts()[0]
                    asked = fake.request_times[asked_before]
                    out["total"].append(first - t2)
                    out["before"].append(asked - t2)
                    out["after"].append(first - asked)
                    await turn
    finally:
        fake.stop()
    return out


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    got = asyncio.run(measure(args.runs))
    print(_row("spawn -> initialize answered", got["init"]))
    print(_row("session/new", got["new"]))
    print(f"{'first prompt (cold imports)':<34} {got['total'][0] * 1000:8.1f} ms")
    warm = {k: v[1:] or v for k, v in got.items()}
    print(_row("prompt -> first thought chunk", warm["total"]))
    print(_row("  before model (prompt -> request)", warm["before"]))
    print(_row("  after model (request -> chunk)", warm["after"]))
    print(f"runs: {args.runs} (warm rows: runs 2..{args.runs}); the fake host answers at once")


if __name__ == "__main__":
    main()
