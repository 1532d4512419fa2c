"""Start-up benchmark: `k2lsp --help` against a bare `python -c pass` in the same run.

    .venv/bin/python bench/startup_bench.py [--runs 15]

Goal (shared/baselines.md): `k2lsp --help` <= 300 ms (kimi-cli 462 ms, mini-swe-agent 612 ms,
aider 1,499 ms on this machine kind). Prints figures only; never fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

K2LSP = Path(sys.executable).with_name("k2lsp")


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    """Alternate the commands, print medians, p90 and the ratio to bare Python."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "k2lsp --help": [str(K2LSP), "--help"],
        "k2lsp --version": [str(K2LSP), "--version"],
    }
    for argv in commands.values():  # warm the page cache and bytecode
        _time(argv)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(_time(argv))
    base = statistics.median(times["python -c pass"])
    for name, samples in times.items():
        med = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        print(
            f"{name:<18} median {med * 1000:6.0f} ms  p90 {p90 * 1000:6.0f} ms  "
            f"({med / base:.2f}x bare python)"
        )
    help_ms = statistics.median(times["k2lsp --help"]) * 1000
    print(
        f"goal: k2lsp --help <= 300 ms -> {'met' if help_ms <= 300 else 'NOT met'} "
        f"({help_ms:.0f} ms)"
    )


if __name__ == "__main__":
    main()
