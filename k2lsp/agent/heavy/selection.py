"""Selection by evidence, in tiers; every candidate left out gets the reason.

1. Candidates that finished, changed files, did not touch any test file, and whose target
   tests (failing before: `Baseline.targets`) all pass now (red -> green).
2. Among them those that pass the full suite (when none does, tier 1 stays, and that is said).
3. Among those the smallest diffs: within `DIFF_SLACK` of the smallest (lines added +
   removed) count as equally small; one left is the winner.
4. More than one left: the K2 judge compares them pairwise (`k2lsp.agent.heavy.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from k2lsp.agent.heavy.candidate import FINISHED_OK, Candidate

DIFF_RATIO = 1.25  # a diff up to 25% larger than the smallest (plus 2 lines) is as small
DIFF_SLACK = 2


@dataclass
class Tiering:
    """Where each candidate stopped, and who is left."""

    finalists: list[Candidate] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # label -> why left out
    notes: list[str] = field(default_factory=list)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def _failures_text(c: Candidate) -> str:
    ev = c.evidence
    if ev is None or not ev.failures:
        return ev.suite if ev else "no test evidence"
    names = ", ".join(f["test_id"] for f in ev.failures[:5])
    more = f" (+{len(ev.failures) - 5} more)" if len(ev.failures) > 5 else ""
    return f"{ev.suite}: {names}{more}"


def tier(
    cands: list[Candidate], *, tests_may_change: bool = False, need_targets: bool = True
) -> Tiering:
    """Apply tiers 1–3 to `cands`; the finalists need the judge when more than one is left.

    `tests_may_change` (a write_tests request, or `allow_test_changes`): changing test files
    is the task, so it does not exclude a candidate. `need_targets` False (write_tests: the
    task is new tests, not fixing the failing ones): tier 1 only needs the suite to have run."""
    t = Tiering()
    usable = []
    for c in cands:
        if c.outcome not in FINISHED_OK:
            t.excluded[c.label] = (
                f"the run ended {c.outcome or 'unfinished'}: {_first_line(c.summary)}"
            )
        elif not c.changed:
            t.excluded[c.label] = "changed no file"
        elif c.evidence is None:
            t.excluded[c.label] = c.error or "no evidence (verification did not run)"
        elif c.evidence.touched_tests and not tests_may_change:
            t.excluded[c.label] = "changed test files: " + "; ".join(c.evidence.test_problems[:3])
        elif not (c.evidence.targets_green if need_targets else c.evidence.suite_ran):
            red = ", ".join(c.evidence.still_red[:5])
            why = f"target tests still fail: {red}" if red else f"no test ran ({c.evidence.suite})"
            t.excluded[c.label] = why
        else:
            usable.append(c)
    if not usable:
        t.notes.append("no candidate made the target tests pass without touching tests")
        return t
    passing = [c for c in usable if c.evidence is not None and c.evidence.suite_ok]
    if passing:
        for c in usable:
            if c not in passing:
                t.excluded[c.label] = f"full suite fails: {_failures_text(c)}"
        usable = passing
    else:
        t.notes.append("no candidate passes the full suite; kept those whose targets pass")
    sizes = {c.label: (c.evidence.diff_lines if c.evidence else 0) for c in usable}
    smallest = min(sizes.values())
    bound = smallest * DIFF_RATIO + DIFF_SLACK
    for c in usable:
        if sizes[c.label] <= bound:
            t.finalists.append(c)
        else:
            t.excluded[c.label] = (
                f"larger diff: {sizes[c.label]} lines changed vs {smallest} for the smallest"
            )
    return t


def explain(winner: Candidate, t: Tiering, judged: bool) -> str:
    """Why `winner` was chosen, in one paragraph."""
    ev = winner.evidence
    assert ev is not None
    parts = []
    if ev.targets and ev.targets_green:
        parts.append(f"its target tests went red -> green ({', '.join(ev.targets[:5])})")
    elif ev.targets:
        parts.append(f"its tests ran (the task did not ask to fix {', '.join(ev.targets[:3])})")
    else:
        parts.append("no test failed before, and its tests ran")
    if not ev.touched_tests:
        parts.append("it changed no test file")
    else:
        parts.append(
            f"it changed test files as the task allows ({', '.join(ev.touched_tests[:3])})"
        )
    parts.append(f"the full suite passes ({ev.suite})" if ev.suite_ok else f"suite: {ev.suite}")
    others = [f"{lbl}: {why}" for lbl, why in sorted(t.excluded.items())]
    size = f"its diff is {ev.diff_lines} line(s)"
    if len(t.finalists) == 1:
        size += ", the smallest"
    elif judged:
        size += f"; the judge preferred it among {', '.join(c.label for c in t.finalists)}"
    parts.append(size)
    text = f"{winner.label} wins: " + "; ".join(parts) + "."
    if others:
        text += " Others: " + " | ".join(others) + "."
    return text
