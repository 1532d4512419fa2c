"""`k2lsp demo`: replay a recorded K2 session that fixes a failing test in a bundled example
repository, with the real agent, tools, sandbox and git (no API key, no model call)."""
