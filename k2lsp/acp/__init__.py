"""The ACP front-end (`k2lsp acp`): the same agent core and event stream as the language server,
spoken as the Agent Client Protocol to agent panels (Zed, JetBrains, Neovim, Emacs)."""
