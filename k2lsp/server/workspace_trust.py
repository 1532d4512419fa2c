"""Workspace trust in the language server: settings for a run honour the editor's trust
(`workspaceTrusted` option) or k2lsp's trust store, the user is told once per configuration
version which repository keys were ignored (`window/showMessage` for every client,
`k2lsp/untrusted` for opt-in clients), and `k2lsp.trust` records the user's decision.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.server import protocol

if TYPE_CHECKING:
    from k2lsp.config import Settings
    from k2lsp.server.app import K2LanguageServer

log = logging.getLogger(__name__)


def run_settings(ls: K2LanguageServer) -> Settings:
    """Every configuration layer for the workspace, trust applied; announces ignored keys."""
    from k2lsp.config import load_settings
    from k2lsp.settings_model import raise_problems_text

    raise_problems_text(list(ls.editor_config.blocking.values()))
    root = ls.root()
    lines: list[str] = []
    settings = load_settings(
        root,
        dict(ls.editor_config.overrides),
        trusted=ls.editor_config.options.workspace_trusted,
        notify=lines.append,
        warn=lambda line: _warn_once(ls, line),
    )
    if settings.untrusted:
        announce(ls, root, settings.untrusted, lines[0] if lines else "")
    return settings


def _warn_once(ls: K2LanguageServer, line: str) -> None:
    """An unknown key in a file or a K2LSP_* variable: shown once per server."""
    if ("warning", line) not in ls.trust_notices:
        ls.trust_notices.add(("warning", line))
        ls.show(f"k2lsp: {line}", types.MessageType.Warning)


def check(ls: K2LanguageServer) -> None:
    """At start-up: tell the user now (not at the first run) about ignored repository keys."""
    from k2lsp.errors import K2lspError

    try:
        run_settings(ls)
    except K2lspError as exc:  # no folder, or a configuration error shown at the first run
        log.info("configuration not checked at start-up: %s", exc)


def announce(ls: K2LanguageServer, root: Path, keys: list[str], line: str) -> None:
    """One notice per repository configuration version."""
    from k2lsp.trust import config_hash

    digest = config_hash(root)
    if (str(root), digest) in ls.trust_notices:
        return
    ls.trust_notices.add((str(root), digest))
    editor_decides = ls.editor_config.options.workspace_trusted is not None
    if editor_decides:
        line = (
            f"k2lsp: the editor does not trust {root}, so its k2lsp configuration keys "
            f"{', '.join(keys)} are ignored; trust the workspace in the editor to apply them"
        )
    ls.show(line, types.MessageType.Warning)
    if ls.wants_stream():
        payload: protocol.UntrustedParams = {
            "root": str(root),
            "keys": list(keys),
            "configHash": digest,
            "message": line,
            "editorDecides": editor_decides,
        }
        ls.protocol.notify(protocol.UNTRUSTED_NOTIFICATION, payload)


async def trust_command(ls: K2LanguageServer, raw: tuple[Any, ...]) -> dict[str, Any]:
    """k2lsp.trust {path?, revoke?}: trust (or stop trusting) the workspace folder."""
    from k2lsp import trust
    from k2lsp.errors import UsageError
    from k2lsp.server.commands import first_arg

    args = first_arg(raw)
    path = Path(str(args["path"])).expanduser() if args.get("path") else ls.root()
    if not path.is_dir():
        raise UsageError(f"{path} is not a folder; pass the repository folder to trust")
    path = path.resolve()
    if args.get("revoke"):
        await asyncio.to_thread(trust.revoke, path)
        ls.trust_notices.clear()
        ls.show(f"K2: {path} is no longer trusted")
        return {"path": str(path), "trusted": False, "configHash": trust.config_hash(path)}
    digest = await asyncio.to_thread(trust.trust, path)
    ls.trust_notices.clear()
    note = (
        "; the editor still treats this workspace as untrusted"
        if ls.editor_config.options.workspace_trusted is False
        else ""
    )
    ls.show(f"K2: trusted {path}: its k2lsp configuration applies from the next run{note}")
    return {"path": str(path), "trusted": True, "configHash": digest}
