"""Language servers used as the agent's tools: k2lsp as an LSP client (references, rename,
diagnostics) of jedi-language-server, basedpyright, typescript-language-server... run confined
on the run copy, with tree-sitter name matching as the fallback when no server is at hand."""
