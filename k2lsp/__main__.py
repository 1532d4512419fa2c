"""Entry point for `python -m k2lsp` and the `k2lsp` console script."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the k2lsp command line; import only what the chosen command needs."""
    from k2lsp.cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
