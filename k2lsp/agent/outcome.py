"""How a run that ended normally is named: `success`, `tests_failed` or `no_change`.

An editing run (not ask/explain) whose model stopped without changing a file and without
running a test did not do the task: it ends `no_change` (exit 7), never `success`. A run that
ran the tests and changed nothing (the tests already pass) is judged by those tests.
"""

from __future__ import annotations

from k2lsp.agent.events import Outcome


def final_outcome(*, tests_failed: bool | None, changed: bool, read_only: bool) -> Outcome:
    """The outcome of a run whose loop finished (no error, no budget stop)."""
    if tests_failed:
        return Outcome.TESTS_FAILED
    if not read_only and not changed and tests_failed is None:
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
