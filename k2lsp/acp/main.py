"""`k2lsp acp`: the ACP agent over stdio (stdout is the protocol; logs go to stderr)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def cli(argv: list[str]) -> int:
    """Serve one ACP client on stdin/stdout until it disconnects."""
    parser = argparse.ArgumentParser(
        prog="k2lsp acp",
        description="Speak the Agent Client Protocol on stdio (Zed, JetBrains, Neovim, Emacs).",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="what goes to stderr (default WARNING; stdout is the protocol)",
    )
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(args.log_level)
    try:
        return asyncio.run(serve())
    except ValueError as exc:  # stdout is a file or a terminal, not a pipe
        if "pipe" not in str(exc).lower():
            raise
        print(
            "k2lsp acp: error: it speaks ACP over stdin/stdout pipes; start it from an ACP "
            "client (an agent panel: see docs/acp.md)",
            file=sys.stderr,
        )
        return 2


async def serve() -> int:
    """Run the agent on this process's stdio."""
    from acp import run_agent

    from k2lsp.acp.agent import K2Agent

    agent = K2Agent()
    try:
        await run_agent(agent)  # type: ignore[arg-type]  # implements what it announces
    finally:
        await agent.close()
    return 0
