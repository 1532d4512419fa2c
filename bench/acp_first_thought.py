"""Time to the first `agent_thought_chunk` after `session/prompt` in `k2lsp acp` (issue 17).

    .venv/bin/python bench/acp_first_thought.py [--runs 10]

One `k2lsp acp` process over stdio, driven by the ACP SDK's client side; the model is the
scripted fake K2 host answering at once (its first reasoning delta leaves as soon as the request
arrives), so the figures are k2lsp's own: `before model` = prompt sent -> request at the host
(prompt parsing, settings, run copy, sandbox `none`, tools, request build); `after model` =
request at the host -> thought chunk at the client (SSE parsing, redaction, event -> update,
JSON-RPC). Also printed: `session/new`, and spawn -> `initialize` answered for `k2lsp acp`
against a bare agent on the same SDK (the floor: importing `acp.schema` alone takes ~0.35 s),
alternated. A fresh session per run (a fresh run copy each time), in a git repository of 20
files.
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


# The floor of any agent on this SDK: a process that imports `acp` and answers `initialize`.
BARE_AGENT = """
import asyncio
from acp import run_agent, schema

class Bare:
    def on_connect(self, conn):
        pass

    async def initialize(self, protocol_version, client_capabilities=None, client_info=None, **kw):
        return schema.InitializeResponse(protocol_version=protocol_version)

asyncio.run(run_agent(Bare()))
"""


async def bare_initialize(runs: int) -> list[float]:
    """Spawn -> `initialize` answered for the bare SDK agent, `runs` times."""
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        cmd = (sys.executable, "-c", BARE_AGENT)
        async with spawn_agent_process(EditorClient(), *cmd) as (conn, _):
            await conn.initialize(protocol_version=1, client_capabilities=client_caps())
            out.append(time.monotonic() - t0)
    return out


async def k2lsp_initialize(runs: int, env: dict[str, str]) -> list[float]:
    """Spawn -> `initialize` answered for `k2lsp acp`, `runs` times."""
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        async with spawn_agent_process(EditorClient(), *AGENT_CMD, env=env) as (conn, _):
            await conn.initialize(protocol_version=1, client_capabilities=client_caps())
            out.append(time.monotonic() - t0)
    return out


TYPING_S = 3.0  # between `initialize` and the first prompt (k2lsp prewarms meanwhile)


def _model_thought(update: object) -> bool:
    """A thought chunk of the model (not k2lsp's own `[k2lsp] ...` preflight note)."""
    if getattr(update, "session_update", "") != "agent_thought_chunk":
        return False
    return not str(getattr(getattr(update, "content", None), "text", "")).startswith("[k2lsp]")


async def measure(runs: int) -> dict[str, list[float]]:
    """Spawn one agent and time `runs` prompts; the figures in seconds."""
    out: dict[str, list[float]] = {k: [] for k in ("new", "total", "before", "after")}
    fake = FakeK2Server([], models=["kimi-k2-thinking"])
    fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="k2lsp-acp-bench-") as tmp:
            files = {f"pkg/mod{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(20)}
            proj = make_repo(Path(tmp) / "proj", files)
            editor = EditorClient()
            env = agent_env(fake.base_url, Path(tmp) / "home")
            async with spawn_agent_process(editor, *AGENT_CMD, env=env, cwd=proj) as (conn, _):
                await conn.initialize(protocol_version=1, client_capabilities=client_caps())
                await asyncio.sleep(TYPING_S)  # the user types the first prompt
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
    with tempfile.TemporaryDirectory(prefix="k2lsp-acp-bench-") as tmp:
        env = agent_env("http://127.0.0.1:9/v1", Path(tmp))
        bare, ours = [], []
        for _ in range(5):  # alternated, so both see the same machine load
            bare += asyncio.run(bare_initialize(1))
            ours += asyncio.run(k2lsp_initialize(1, env))
    print(_row("spawn -> initialize: bare SDK agent", bare))
    print(_row("spawn -> initialize: k2lsp acp", ours))
    print(f"{'  ratio (medians)':<34} {statistics.median(ours) / statistics.median(bare):.2f}x")
    print(_row("session/new", got["new"]))
    print(f"{'first prompt (3 s after initialize)':<34} {got['total'][0] * 1000:8.1f} ms")
    warm = {k: v[1:] or v for k, v in got.items()}
    print(_row("prompt -> first thought chunk", warm["total"]))
    print(_row("  before model (prompt -> request)", warm["before"]))
    print(_row("  after model (request -> chunk)", warm["after"]))
    print(f"runs: {args.runs} (warm rows: runs 2..{args.runs}); the fake host answers at once")


if __name__ == "__main__":
    main()
