"""`k2lsp undo`: put back the files the last delivery (or a named checkpoint) wrote."""

from __future__ import annotations

import argparse
import sys

from k2lsp.errors import K2lspError
from k2lsp.runs import checkpoint as _cp


# ---- k2lsp undo -----------------------------------------------------------------------------
def cli_undo(argv: list[str]) -> int:
    """`k2lsp undo`: put back the files the last delivery (or a named checkpoint) wrote."""
    parser = argparse.ArgumentParser(prog="k2lsp undo", description=cli_undo.__doc__)
    parser.add_argument("--repo", default=".", help="the folder the delivery wrote to")
    parser.add_argument("--checkpoint", help="checkpoint id (default: the latest not undone)")
    parser.add_argument("--list", action="store_true", help="list checkpoints and exit")
    parser.add_argument(
        "--force", action="store_true", help="restore even files you changed after the delivery"
    )
    parser.add_argument("--state-dir", help="k2lsp state folder (non-git folders only)")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for m in _cp.list_checkpoints(args.repo, state_dir=args.state_dir):
                state = "undone" if m["undone"] else ("sealed" if m["after"] else "incomplete")
                print(f"{m['id']}  {state:10}  {len(m['files'])} file(s)  {m['label']}")
            return 0
        result = _cp.undo(args.repo, args.checkpoint, force=args.force, state_dir=args.state_dir)
    except K2lspError as exc:
        print(f"k2lsp undo: {exc}", file=sys.stderr)
        return exc.outcome.exit_code
    print(result.message)
    for rel in result.restored:
        print(f"  restored {rel}")
    for rel in result.deleted:
        print(f"  removed  {rel}")
    return 0
