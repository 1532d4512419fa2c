"""Tools the model sees. Each module registers its tools on the default registry.

`build_registry()` imports every tool module and returns the registry; importing a module is
what registers its tools (see `k2lsp.tools.base.tool`).
"""

from __future__ import annotations

import importlib

from k2lsp.tools.base import REGISTRY, ToolRegistry

TOOL_MODULES = (
    "k2lsp.tools.files",
    "k2lsp.tools.search",
    "k2lsp.tools.edit",
    "k2lsp.tools.symbols",
    "k2lsp.tools.patch",
    "k2lsp.tools.testing",
    "k2lsp.tools.git_tools",
    "k2lsp.tools.refs",
    "k2lsp.tools.diagnostics",
    "k2lsp.tools.rewrite",
)


def build_registry() -> ToolRegistry:
    """Import every tool module (idempotent) and return the default registry."""
    for name in TOOL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a tool group not built yet
            if exc.name != name:
                raise
    return REGISTRY
