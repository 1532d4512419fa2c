"""`k2lsp gc`: remove run copies (and sandbox containers) of runs that are gone."""

from __future__ import annotations

import argparse
import sys

from k2lsp.runs.conversations import is_parked
from k2lsp.runs.gc import collect, stale_runs


def cli_gc(argv: list[str]) -> int:
    """`k2lsp gc`: remove run copies left behind by crashed or killed runs."""
    parser = argparse.ArgumentParser(prog="k2lsp gc", description=cli_gc.__doc__)
    parser.add_argument("--state-dir", help="k2lsp state folder (default: ~/.local/state/k2lsp)")
    parser.add_argument("--dry-run", action="store_true", help="list stale runs, remove nothing")
    parser.add_argument(
        "--conversations",
        action="store_true",
        help="also remove every kept conversation (their run copies; follow-ups then fail)",
    )
    args = parser.parse_args(argv)
    if not args.dry_run:
        from k2lsp.sandbox.reap import reap_quietly

        for name in reap_quietly():  # sandbox containers of k2lsp processes that are gone
            print(f"removed container {name}")
    stale = [d for d in stale_runs(args.state_dir) if args.conversations or not is_parked(d)]
    if not stale:
        print("no stale run copies")
        return 0
    if args.dry_run:
        for run_dir in stale:
            print(f"stale: {run_dir}")
        return 0
    keep = {"keep_conversations": 0} if args.conversations else {}
    for line in collect(args.state_dir, setup_grace_s=0.0, **keep):
        print(line, file=sys.stderr if line.startswith("could not") else sys.stdout)
    return 0
