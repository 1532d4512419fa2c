"""Heavy mode: N complete agent runs in parallel on one task, each in its own run copy and
sandbox, sharing one budget and one cancel; the winner is chosen by test evidence, then diff
size, then a pairwise K2 judge (docs/heavy.md).

    outcome = await run_heavy(HeavyRequest(task=..., repo=..., n=4), settings, sinks=[...])
    outcome.winner        # the chosen Candidate (or None), with its run copy and evidence
    outcome.candidates    # every candidate, failing ones too, with their evidence
    outcome.cleanup()     # remove every run copy (front-ends deliver first)

Modules: `budget` (the shared pool), `diversity` (temperatures, opening plans, prefix
identity), `resources` (how many sandboxes fit at once), `evidence` (baseline and
per-candidate test evidence), `selection` (the tiers), `judge` (pairwise K2 comparison),
`scheduler` (the orchestration).
"""

from __future__ import annotations
