"""Heavy mode: wall time of ×1, ×4, ×8 candidates with scripted model latency, the parallel
efficiency, peak memory, and the prefix-cache ratio of the N request streams.

Each candidate is a complete run against the fake K2 host (its own process, so its CPU is not
ours) with `--latency` seconds per model reply spread over the streamed chunks: read the code,
fix it, run the tests in the real sandbox, finish. Candidate i adds 3·i comment lines to the
fix, so the diffs differ and selection needs no judge. Every size runs in a fresh process:
`peak MiB` is that process's maximum RSS (loop, N clients, tools, events; the fake host runs
apart, and sandboxed tests are bounded by the sandbox's own memory limit).
Efficiency = T(×1) / T(×N) (1.0: N candidates cost no more wall time than one). The
machine's cores are shared; figures vary.

    .venv/bin/python bench/heavy_bench.py [--sizes 1,4,8] [--latency 1.0] [--sandbox bwrap]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = "kimi-k2-thinking"
BUG = "def add(a, b):\n    return a - b\n"
FILES = {
    "calc.py": '"""A tiny calculator."""\n\n\n' + BUG,
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
TEST_COMMAND = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {sys.executable} -m pytest -q -p no:cacheprovider"


def _replies(i: int, latency: float) -> list[Any]:
    from k2lsp.fake.script import Reply

    thought = "Let me think about what the task asks and where the code lives. " * 4
    chunks = max(1, len(thought) // 24)
    delay = latency / chunks
    fix = "def add(a, b):\n" + "    # checked\n" * (3 * i) + "    return a + b\n"
    edit = ("edit_file", {"path": "calc.py", "old_text": BUG, "new_text": fix})

    def reply(**kw: Any) -> Any:
        return Reply(reasoning=thought, chunk_size=24, delay_s=delay, **kw)

    return [
        reply(tool_calls=[("read_file", {"path": "calc.py"})]),
        reply(tool_calls=[edit]),
        reply(tool_calls=[("run_tests", {})]),
        reply(content="add now returns the sum."),
    ]


def _serve(n: int, latency: float, conn: Any, stop: Any) -> None:
    """In its own process: the fake K2 host, one routed script per candidate."""
    from k2lsp.agent.heavy.diversity import opening_plan
    from k2lsp.fake.server import FakeK2Server

    with FakeK2Server(models=[MODEL], prefix_cache="shared") as srv:
        for i in range(n):
            srv.routes.add(opening_plan(i), *_replies(i, latency))
        conn.send(srv.base_url)
        stop.wait()


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for rel, text in FILES.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    who = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x"}
    env = {**os.environ, **who, "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True)
    return path


def one(n: int, base_url: str, sandbox: str, memory_mb: int) -> dict[str, Any]:
    """One heavy run of `n` candidates in this process; its figures."""
    from k2lsp.agent.events import Event
    from k2lsp.agent.heavy.scheduler import run_heavy
    from k2lsp.agent.session import RunRequest
    from k2lsp.config.settings import Settings

    events: list[Event] = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = _repo(Path(tmp) / "repo")
        settings = Settings(
            provider="openai-compatible",
            base_url=base_url,
            model=MODEL,
            api_key="sk-bench-00000000000000",
            sandbox=sandbox,
            state_dir=Path(tmp) / "state",
            test_command=TEST_COMMAND,
            sandbox_limits={"memory_mb": memory_mb},
        )
        start = time.perf_counter()
        out = asyncio.run(
            run_heavy(
                RunRequest(task="make add return the sum", repo=repo), n, settings, [events.append]
            )
        )
        wall = time.perf_counter() - start
        out.cleanup()
    started = next(e.data for e in events if e.type == "heavy_started")
    selected = next(e.data for e in events if e.type == "heavy_selected")
    return {
        "n": n,
        "wall_s": round(wall, 2),
        "winner": selected["winner"],
        "at_once": started["at_once"],
        "cache_ratio": selected["cache_ratio"],
        "prefix": f"{started['prefix_chars']}/{started['first_request_chars']}",
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> int:
    """Run every size in its own process and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,4,8")
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per model reply")
    ap.add_argument("--sandbox", default="bwrap")
    ap.add_argument("--memory-mb", type=int, default=512, help="memory limit per sandbox")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.base_url, args.sandbox, args.memory_mb)))
        return 0
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        stop = ctx.Event()
        server = ctx.Process(target=_serve, args=(n, args.latency, child, stop), daemon=True)
        server.start()
        cmd = [sys.executable, __file__, "--one", str(n), "--base-url", parent.recv(),
               "--sandbox", args.sandbox, "--memory-mb", str(args.memory_mb)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        stop.set()
        server.join(10)
        if proc.returncode != 0:
            print(f"x{n} failed: {proc.stderr[-800:]}")
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(
        f"cores: {os.cpu_count()} · model latency {args.latency} s/reply · sandbox {args.sandbox}"
    )
    print(f"{'N':>3} {'wall s':>7} {'xT1':>5} {'effic.':>6} {'at once':>7} {'peak MiB':>8} "
          f"{'cache':>6} {'prefix chars':>13} winner")  # fmt: skip
    t1 = next((r["wall_s"] for r in rows if r["n"] == 1), None)
    for r in rows:
        ratio = r["wall_s"] / t1 if t1 else 0.0
        eff = t1 / r["wall_s"] if t1 else 0.0
        print(f"{r['n']:>3} {r['wall_s']:>7.2f} {ratio:>5.2f} {eff:>6.2f} {r['at_once']:>7} "
              f"{r['peak_mib']:>8} {r['cache_ratio']:>6.1%} "
              f"{r['prefix']:>13} {r['winner']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
