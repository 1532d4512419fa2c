"""`python -m k2lsp.fake.server --script F.json [--port N] [--host MODE]`: serve a JSON script
until killed, printing the base URL as the first stdout line."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from k2lsp.fake.hosts import HOST_MODES
from k2lsp.fake.script import load_script
from k2lsp.fake.server import FakeK2Server


def main(argv: list[str] | None = None) -> int:
    """Serve a JSON script file until killed; print the base URL first."""
    ap = argparse.ArgumentParser(prog="python -m k2lsp.fake.server")
    ap.add_argument("--script", required=True, help="JSON list of replies / faults")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--reasoning-field", default="reasoning_content")
    ap.add_argument("--usage", default="choice")
    ap.add_argument("--models", default="", help="comma-separated model ids (default: any)")
    ap.add_argument("--context-limit", type=int, default=None)
    ap.add_argument("--no-validate", action="store_true", help="accept any request body")
    ap.add_argument("--host", default="moonshot", choices=HOST_MODES, help="server to imitate")
    args = ap.parse_args(argv)
    with open(args.script, encoding="utf-8") as fh:
        script = load_script(json.load(fh))
    models: list[str | dict[str, Any]] | None = (
        [m for m in args.models.split(",") if m] if args.models else None
    )
    srv = FakeK2Server(
        script,
        models=models,
        reasoning_field=args.reasoning_field,
        usage=args.usage,
        validate=not args.no_validate,
        context_limit=args.context_limit,
        port=args.port,
        host=args.host,
    )
    print(srv.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0
