"""The outcome of a heavy run, from its winner and its candidates' outcomes."""

from __future__ import annotations

from k2lsp.agent.heavy.candidate import Candidate
from k2lsp.errors import Outcome


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
