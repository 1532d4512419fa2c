"""The refactor job on real packages: wall time, model tokens per changed site, and the sites
found by tree-sitter name matching vs the language server (false positives / negatives).

    python bench/refactor_bench.py        (needs bench/corpus.py's bottle and, for the
                                           TypeScript case, bench/refactor_corpus.py fetch)

The model is the scripted fake K2 (tests/refactor_helpers.py): its token counts are the fake
host's estimates of the real requests (the prompts are real), so "tokens per site" measures
what the job sends, not what a real K2 would think. Figures only; never fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench import refactor_corpus  # noqa: E402
from bench.corpus import BY_NAME, available, user_project  # noqa: E402
from k2lsp.lspc.fallback import name_sites  # noqa: E402
from k2lsp.lspc.servers import ServerSpec, find_server  # noqa: E402
from k2lsp.lspc.session import ServerSession  # noqa: E402

SHARED_NAMES = ("run", "load", "template")


def compare(root: Path, spec: ServerSpec, path: str, name: str) -> dict[str, Any]:
    """Sites by the server vs by name matching, and the time each took."""
    lines = (root / path).read_text(encoding="utf-8").split("\n")
    line = next(
        i
        for i, t in enumerate(lines, 1)
        if (f"{name}(" in t and "function" in t) or t.startswith(f"def {name}(")
    )
    t0 = time.perf_counter()
    session = ServerSession(spec, root).start()
    try:
        server = {s.key() for s in session.references(path, line, lines[line - 1].index(name) + 1)}
    finally:
        session.close()
    t1 = time.perf_counter()
    by_name = {s.key() for s in name_sites(root, name)}
    t2 = time.perf_counter()
    return {
        "server": len(server),
        "name": len(by_name),
        "fp": sorted(by_name - server),
        "fn": sorted(server - by_name),
        "server_s": t1 - t0,
        "name_s": t2 - t1,
    }


def run_job(repo: Path, job: Any, env: dict[str, str]) -> dict[str, Any]:
    """Wall time and usage of the scripted job."""
    from k2lsp.agent.refactor.job import JobOptions
    from k2lsp.agent.refactor.runner import run_job as run
    from k2lsp.config.settings import load_settings
    from k2lsp.fake.server import FakeK2Server

    usage = {"prompt": 0, "completion": 0}
    done: dict[str, Any] = {}

    def sink(event: Any) -> None:
        if event.type == "usage":
            usage["prompt"] += int(event.data["prompt_tokens"])
            usage["completion"] += int(event.data["completion_tokens"])
        if event.type == "job_progress":
            done.update(event.data)

    with FakeK2Server() as srv:
        srv.responder = job.policy
        os.environ.update(env, K2LSP_BASE_URL=srv.base_url)
        t0 = time.perf_counter()
        result = asyncio.run(run(JobOptions(task=job.task, repo=repo), load_settings(repo), [sink]))
        wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "outcome": result.outcome.value,
        "requests": len(srv.requests),
        **usage,
        **done,
    }


def report(label: str, cmp: dict[str, Any], job: dict[str, Any]) -> None:
    sites = cmp["server"]
    tokens = job["prompt"] + job["completion"]
    print(f"\n== {label}")
    print(f"sites: language server {sites}, name matching {cmp['name']} "
          f"(false positives {len(cmp['fp'])}, false negatives {len(cmp['fn'])})")  # fmt: skip
    for kind in ("fp", "fn"):
        for site in cmp[kind][:8]:
            print(f"  {kind.upper()}: {site[0]}:{site[1]}:{site[2]}")
    print(f"references: server {cmp['server_s']:.2f} s (incl. start), "
          f"name matching {cmp['name_s']:.2f} s")  # fmt: skip
    print(f"job: {job['wall_s']:.1f} s wall, {job['batches']} batches, "
          f"{job['requests']} model requests, outcome {job['outcome']}, "
          f"sites left {job['sites_left']}")  # fmt: skip
    print(f"model tokens: {tokens:,} ({job['prompt']:,} prompt + {job['completion']:,} completion) "
          f"= {tokens / max(sites, 1):,.0f} per changed site")  # fmt: skip


def main() -> None:
    from refactor_helpers import RenameJob

    env = {"K2LSP_API_KEY": "sk-bench-0123456789abcdefghij", "K2LSP_MODEL": "kimi-k2-thinking"}
    env |= {"K2LSP_PROVIDER": "openai-compatible", "K2LSP_SANDBOX": "none"}
    with tempfile.TemporaryDirectory() as tmp:
        env["XDG_STATE_HOME"] = f"{tmp}/state"
        pkg = BY_NAME["bottle"]
        spec = find_server("python")
        if available(pkg) and spec is not None:
            old, new = "def to_bytes(s, enc='utf8'):", "def to_bytes(s, *, enc='utf8'):"
            job = RenameJob("bottle.py", "tob", "to_bytes", "enc='utf8'", old, new)
            repo = user_project(pkg, Path(tmp) / "bottle")
            cmp = compare(repo, spec, "bottle.py", "tob")
            for name in SHARED_NAMES:  # names other symbols share: where matching by name errs
                c = compare(repo, spec, "bottle.py", name)
                print(f"bottle {name!r}: server {c['server']}, name matching {c['name']} "
                      f"(FP {len(c['fp'])}, FN {len(c['fn'])})")  # fmt: skip
            report(
                f"bottle {pkg.version}: tob -> to_bytes (+ enc at every call), {spec.name}",
                cmp,
                run_job(repo, job, env),
            )
        else:
            print("bottle or jedi-language-server missing: run bench/corpus.py; pip install .[lsp]")
        if refactor_corpus.tsls_bin().exists() and refactor_corpus.immer_source().is_dir():
            repo = refactor_corpus.typescript_project(Path(tmp) / "immer")
            ts = ServerSpec("typescript", (str(refactor_corpus.tsls_bin()), "--stdio"))
            job = RenameJob("src/utils/errors.ts", "die", "fail", language="typescript")
            env["PATH"] = f"{refactor_corpus.tsls_bin().parent}{os.pathsep}{os.environ['PATH']}"
            cmp = compare(repo, ts, "src/utils/errors.ts", "die")
            report(
                f"immer {refactor_corpus.IMMER}: die -> fail, typescript-language-server",
                cmp,
                run_job(repo, job, env),
            )
        else:
            print(
                "immer / typescript-language-server missing: python bench/refactor_corpus.py fetch"
            )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
