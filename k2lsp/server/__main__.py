"""`python -m k2lsp.server [--stdio | --tcp --port N]`: the language server alone."""

from __future__ import annotations

import sys

from k2lsp.server.app import serve

if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
