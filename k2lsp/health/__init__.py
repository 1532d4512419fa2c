"""Setup checks shared by `k2lsp doctor`, the `k2lsp.checkSetup` server command, Neovim's
`:checkhealth k2lsp` and VS Code's "K2: Check setup"."""
