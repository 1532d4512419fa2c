"""Heavy mode: N complete agent runs in parallel on one task, each in its own run copy and
sandbox, sharing one budget and one cancel; the winner is chosen by test evidence, then diff
size, then a pairwise K2 judge (docs/heavy.md).

    from k2lsp.agent.heavy.scheduler import run_heavy
    out = await run_heavy(RunRequest(task=..., repo=...), 4, settings, sinks=[...])
    out.winner        # the chosen Candidate (or None): .result (RunResult, run copy), .evidence
    out.candidates    # every candidate, failing ones too, with their evidence
    out.cleanup()     # remove every run copy (front-ends deliver first)

Modules: `budget` (the shared pool), `diversity` (temperatures, opening plans, prefix
identity), `resources` (how many sandboxes fit at once), `evidence` (baseline and
per-candidate test evidence), `selection` (the tiers), `judge` (pairwise K2 comparison),
`candidate` and `outcome` (what is handed back), `scheduler` (the orchestration).
"""

from __future__ import annotations
