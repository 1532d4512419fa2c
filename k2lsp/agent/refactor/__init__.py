"""The refactor job (`k2lsp refactor "…"`): a plan written by K2 with the sites found by the
language-server tools, then bounded batches with tests and a commit each, a job file that lets a
killed job resume, and a completeness check. See docs/refactor.md."""
