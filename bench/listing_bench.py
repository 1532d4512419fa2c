"""Time the one file-listing engine (`k2lsp.code.filelist`, ripgrep `--files`) against
`git ls-files --cached --others --exclude-standard` (what the repo map used before) on the same
repository, and the tools that sit on it (`list_files`, `search` with a path: a scoped call
lists the whole root once to know whether the scope is ignored).

Corpus: the stdlib's .py files minus `test/` and `site-packages/`, copied into a temp folder and
committed to a fresh git repository. Runs are interleaved; medians compared in the same run.

    .venv/bin/python bench/listing_bench.py [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from k2lsp.code.filelist import list_files
from k2lsp.code.files import list_source_files
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext
from k2lsp.workspace import Workspace

try:
    from search_bench import copy_corpus  # type: ignore[import-not-found]
except ImportError:  # run as bench/listing_bench.py from the repository root
    from bench.search_bench import copy_corpus


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b")
    env.update(GIT_COMMITTER_EMAIL="b@b")
    return env


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    """Print min / median / max per operation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="k2lsp-listing-bench-") as tmp:
        root = Path(tmp)
        count = copy_corpus(root)
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "corpus"]):
            subprocess.run(["git", *args], cwd=root, env=_git_env(), check=True)
        ctx = ToolContext(Workspace(root))
        registry = build_registry()
        git_cmd = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]

        def tool(name: str, **args: object) -> Callable[[], object]:
            return lambda: asyncio.run(registry.execute(name, args, ctx))

        ops: dict[str, Callable[[], object]] = {
            "git ls-files (old repo-map engine)": lambda: subprocess.run(
                git_cmd, cwd=root, env=_git_env(), capture_output=True, check=True
            ),
            "filelist.list_files": lambda: list_files(root),
            "code.files.list_source_files": lambda: list_source_files(root),
            "list_files tool (root)": tool("list_files"),
            "list_files tool (path=asyncio)": tool("list_files", path="asyncio"),
            "search tool (path=asyncio)": tool("search", pattern="def ", path="asyncio"),
        }
        times: dict[str, list[float]] = {name: [] for name in ops}
        for _ in range(opts.runs):
            for name, fn in ops.items():
                times[name].append(timed(fn))
        print(f"corpus: {count} stdlib .py files in a git repository; {opts.runs} runs")
        for name, samples in times.items():
            lo, med, hi = min(samples), statistics.median(samples), max(samples)
            print(f"{name:36} min / median / max {lo:7.1f} / {med:7.1f} / {hi:7.1f} ms")


if __name__ == "__main__":
    main()
