"""Running a project's tests: runner detection, the command with machine-readable output, and
parsers that turn runner output into counts and failures (test id, file:line, message)."""
