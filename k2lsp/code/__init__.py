"""Code intelligence on tree-sitter: languages, parsing, symbols, repo map, syntax gate."""
