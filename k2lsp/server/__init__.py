"""The k2lsp language server (pygls wiring only); entry point `k2lsp.server.app:serve`."""
