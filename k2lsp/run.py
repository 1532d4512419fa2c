"""One run, front-end agnostic: make the run copy, build client, tools and sandbox, drive the
agent loop, and hand back the change set (delivery is the front-end's choice).

STUB: the agent-core issue implements this. Contract used by the CLI and the language server:

    request = RunRequest(task="fix the failing test", repo=Path("."), mode="task")
    result = await execute_run(request, settings, sinks=[print_event])
    # result.changes: ChangeSet of the run copy vs. its start (not yet delivered)
    # result.run_copy: the RunCopy (front-ends deliver from it, then call cleanup())

Cancelling the asyncio task running `execute_run` ends the run with outcome `cancelled`
(nothing is delivered; the user's tree is untouched).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.agent.events import EventSink, Outcome
from k2lsp.changes import ChangeSet
from k2lsp.model.types import Usage

# Run modes: what the request asks for (drives prompt and read-only tool sets).
MODES = ("task", "ask", "fix_diagnostic", "explain", "refactor", "write_tests", "fix_failing_test")
READ_ONLY_MODES = ("ask", "explain")


@dataclass
class RunRequest:
    """What a front-end asks for."""

    task: str
    repo: Path
    mode: str = "task"
    context: str = ""  # selection, diagnostic, failing test output... for the prompt
    overlay: dict[str, str] = field(default_factory=dict)  # unsaved buffers: rel path -> text
    run_id: str | None = None
    focus_paths: list[str] = field(default_factory=list)  # files the task is about

    @property
    def read_only(self) -> bool:
        """Ask/explain runs never edit."""
        return self.mode in READ_ONLY_MODES


@dataclass
class RunResult:
    """How a run ended and what it changed (undelivered)."""

    run_id: str
    outcome: Outcome
    summary: str
    changes: ChangeSet = field(default_factory=ChangeSet)
    usage: Usage = field(default_factory=Usage)
    steps: int = 0
    trajectory: Path | None = None
    run_copy: Any = None  # k2lsp.runcopy.RunCopy when one was made
