"""What a heavy run hands back (`HeavyOutcome`) and its outcome, from its winner and its
candidates' outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.agent.heavy.candidate import Candidate
from k2lsp.errors import Outcome
from k2lsp.model.types import Usage


def heavy_outcome(cands: list[Candidate], winner: Candidate | None) -> Outcome:
    """`success` with a winner; else the candidates' common outcome, or `tests_failed`."""
    if winner is not None:
        return Outcome.SUCCESS
    outcomes = {c.outcome for c in cands}
    if len(outcomes) == 1:
        only = outcomes.pop()
        for o in Outcome:
            if o.value == only and o is not Outcome.SUCCESS:
                return o
    return Outcome.TESTS_FAILED


@dataclass
class HeavyOutcome:
    """How a heavy run ended: the winner (if any) and every candidate."""

    run_id: str
    outcome: Outcome
    summary: str
    candidates: list[Candidate] = field(default_factory=list)
    winner: Candidate | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    trajectory: Path | None = None
    usage: Usage = field(default_factory=Usage)  # every request of the run (judge included)

    def run_copies(self) -> list[Any]:
        """Every candidate's run copy (those that were made)."""
        return [c.result.run_copy for c in self.candidates if c.result and c.result.run_copy]

    def cleanup(self, keep_branch: bool = False) -> list[str]:
        """Remove every run copy (and undelivered branch); problems as readable lines."""
        problems = []
        for copy in self.run_copies():
            try:
                copy.cleanup(keep_branch=keep_branch)
            except Exception as exc:  # one failure must not keep the others
                problems.append(f"could not remove the run copy {copy.root}: {exc}")
        return problems
