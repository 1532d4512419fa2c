"""Entry point for `python -m k2lsp` and the `k2lsp` console script."""

from __future__ import annotations

import sys

# Sub-commands from layers above the CLI: the demo drives the CLI's renderers and delivery.
TOP_COMMANDS = {
    "demo": ("k2lsp.demo.demo:cli", "replay a recorded K2 session fixing a failing test (no key)"),
}


def main(argv: list[str] | None = None) -> int:
    """Run the k2lsp command line; import only what the chosen command needs."""
    from k2lsp.cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv, TOP_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
