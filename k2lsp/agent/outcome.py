"""How a run that ended normally is named: `success`, `tests_failed` or `no_change`.

An editing run (not ask/explain) whose model stopped without changing a file and without
running anything (no `run_tests`, no `run_command` that ran) did not do the task: it ends
`no_change` (exit 7), never `success`. A run that ran the tests or commands and changed nothing
(the tests already pass, the task was to run something) is judged by what ran.
"""

from __future__ import annotations

from k2lsp.agent.events import Event, Outcome

RUNNING_TOOLS = ("run_tests", "run_command")


class ActivityWatch:
    """An event sink that notes whether a test or command actually ran in the sandbox."""

    def __init__(self) -> None:
        self.ran = False

    def __call__(self, event: Event) -> None:
        """Watch `test_result` events and successful run_tests/run_command results."""
        d = event.data
        if event.type == "test_result" or (
            event.type == "tool_result" and d.get("name") in RUNNING_TOOLS and d.get("ok")
        ):
            self.ran = True


def final_outcome(
    *, tests_failed: bool | None, changed: bool, read_only: bool, ran: bool = False
) -> Outcome:
    """The outcome of a run whose loop finished (no error, no budget stop)."""
    if tests_failed:
        return Outcome.TESTS_FAILED
    if not read_only and not changed and tests_failed is None and not ran:
        return Outcome.NO_CHANGE
    return Outcome.SUCCESS


def no_change_summary(summary: str) -> str:
    """The run summary of a `no_change` run: what the model said, and what to do."""
    said = summary.strip()
    lead = f"{said}\n\n" if said else ""
    return (
        f"{lead}k2lsp: the model ended without changing any file or running the tests, so "
        "the task is not done (outcome no_change, exit 7). Rephrase the task, name the files "
        "involved, or run again."
    )
