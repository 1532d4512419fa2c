"""k2lsp: Kimi K2 Thinking as a language server and a headless coding agent."""

from __future__ import annotations

__version__ = "0.1.0"
