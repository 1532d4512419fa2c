"""`k2lsp acp`: the ACP agent over stdio (stdout is the protocol; logs go to stderr)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
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
    """Run the agent on this process's stdio until stdin closes or SIGTERM/SIGHUP comes; then
    end running turns (answered `cancelled`, run copies removed) and stop MCP servers before
    the connection closes."""
    from acp.core import AgentSideConnection
    from acp.stdio import stdio_streams

    from k2lsp.acp.agent import K2Agent

    agent = K2Agent()
    output_stream, input_stream = await stdio_streams(limit=STDIO_LIMIT)
    conn = AgentSideConnection(agent, input_stream, output_stream, listening=False)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # an editor closing the panel
        loop.add_signal_handler(sig, stop.set)
    listening = asyncio.create_task(conn.listen(), name="k2lsp-acp-listen")
    stopping = asyncio.create_task(stop.wait(), name="k2lsp-acp-stop")
    try:
        await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await agent.close()  # while the connection can still answer the prompts
        listening.cancel()
        stopping.cancel()
        try:
            await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            # The SDK can wait forever on a reply it cannot send any more; everything of ours
            # is cleaned up already, so leave without waiting for it.
            logging.getLogger(__name__).warning("the ACP connection did not close; exiting")
            sys.stderr.flush()
            os._exit(0)
    return 0


STDIO_LIMIT = 50 * 1024 * 1024  # one JSON-RPC line, at most (prompts embed whole files)
CLOSE_TIMEOUT_S = 5.0
