"""Start-up warming: what the first requests would otherwise pay for, done off the event loop.

`initialize` imports as little as possible (start-up is a feature), so right after
`initialized` a worker thread imports the modules later requests and start-up checks need
(pydantic configuration, settings layers, test detection), loads the grammars and parsers
test detection uses, and has the LSP converter build its (de)serialisation hooks for the
messages of the code-action path, then freezes the heap start-up made (no later full
collection walks it). The first code action after a file is opened then waits
only for that file's own parse, which starts at didOpen.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
from typing import Any

from lsprotocol import types
from pygls.protocol.json_rpc import JsonRPCResponseMessage

log = logging.getLogger(__name__)

# Imported by `initialized` itself (configuration) or on the first run / code action.
_MODULES = (
    "k2lsp.server.config",
    "k2lsp.config.settings",
    "k2lsp.config.trust",
    "k2lsp.agent.budgets",
    "k2lsp.server.workspace_trust",
    "k2lsp.server.actions",
    "k2lsp.testrun.testfuncs",
    "k2lsp.runs.gc",
)

_URI = "file:///k2lsp-warm/test_warm.py"
_RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}
_DIAGNOSTIC = {"range": _RANGE, "message": "m", "severity": 1, "source": "s", "data": {"a": 1}}
# Messages a client sends on the code-action path, as they arrive (before structuring).
_MESSAGES: tuple[dict[str, Any], ...] = (
    {
        "method": types.TEXT_DOCUMENT_DID_OPEN,
        "params": {
            "textDocument": {
                "uri": _URI,
                "languageId": "python",
                "version": 1,
                "text": "def test_x():\n    pass\n",
            }
        },
    },
    {
        "method": types.TEXT_DOCUMENT_DID_CHANGE,
        "params": {
            "textDocument": {"uri": _URI, "version": 2},
            "contentChanges": [{"range": _RANGE, "text": "x"}, {"text": "y"}],
        },
    },
    {"method": types.TEXT_DOCUMENT_DID_CLOSE, "params": {"textDocument": {"uri": _URI}}},
    {
        "id": 0,
        "method": types.TEXT_DOCUMENT_CODE_ACTION,
        "params": {
            "textDocument": {"uri": _URI},
            "range": _RANGE,
            "context": {"diagnostics": [_DIAGNOSTIC], "only": ["quickfix"], "triggerKind": 1},
        },
    },
)


def import_modules() -> None:
    """Import what `initialized`'s configuration steps and later requests use."""
    for name in _MODULES:
        importlib.import_module(name)


def load_grammars() -> None:
    """Load the grammars (and this thread's parsers) test detection uses."""
    from k2lsp.code.languages import get_parser
    from k2lsp.testrun import testfuncs

    for lang in testfuncs._MARKERS:
        try:
            get_parser(lang)
        except Exception:  # a missing grammar only costs this language its test actions
            log.warning("grammar %s unavailable for test detection", lang)


def warm_converter(protocol: Any) -> None:
    """Have the converter build the hooks of the code-action path's messages now (cattrs
    generates each type's hooks on first use: ~10 ms per message type)."""
    for message in _MESSAGES:
        protocol.structure_message({"jsonrpc": "2.0", **message})
    diagnostic = protocol._converter.structure(_DIAGNOSTIC, types.Diagnostic)
    title = "K2: Fix"
    action = types.CodeAction(
        title=title,
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        command=types.Command(title=title, command="k2lsp.fix", arguments=[{"uri": _URI}]),
    )
    response = JsonRPCResponseMessage(id=0, result=[action, action], jsonrpc="2.0")
    json.dumps(response, default=protocol._serialize_message)


def settle_heap() -> None:
    """Collect once, then move everything start-up made (modules, grammars, schemas, the
    converter's hooks) out of the collector's sight: a full collection otherwise walks those
    hundreds of thousands of objects again, 15-25 ms with the GIL held, whenever the next
    request happens to trigger one."""
    gc.collect()
    gc.freeze()


def prewarm(protocol: Any) -> None:
    """All of the above (run in a worker thread right after `initialized`)."""
    try:  # what the first code action needs first, then the rest
        load_grammars()
        warm_converter(protocol)
        import_modules()
        settle_heap()
    except Exception:  # warming is an optimisation: a failure must not break start-up
        log.exception("start-up warming failed")
