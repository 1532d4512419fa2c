"""`k2lsp.checkSetup`: the setup checks (k2lsp.health) with the settings this server's runs
would use (editor options, env such as MOONSHOT_API_KEY, the key the editor handed over),
run in a worker thread. Neovim's `:checkhealth k2lsp` and VS Code's "K2: Check setup" call it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from k2lsp.server.app import K2LanguageServer


async def check_setup(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
    """Run the checks; with no argument also show them (one line per problem)."""
    from k2lsp.errors import K2lspError
    from k2lsp.health.checks import FAIL, Check, setup_checks, summary
    from k2lsp.server.failure import command_error

    try:
        settings = ls.run_settings()
        root = ls.root()
    except K2lspError as exc:
        checks = [Check("configuration", FAIL, str(exc), "fix the setting named above")]
        root = Path.cwd()
        settings = None
    if settings is not None:
        try:
            checks = await asyncio.to_thread(setup_checks, settings, root)
        except Exception as exc:  # a probe that crashed is a failed check, not a crash
            raise command_error(exc) from None
    result = summary(checks)
    if not args:
        if result["problems"]:
            kind = types.MessageType.Error if not result["ok"] else types.MessageType.Warning
            ls.show("K2 setup: " + "; ".join(result["problems"]), kind)
        else:
            ls.show(f"K2 setup: all {len(checks)} checks passed")
    return result
