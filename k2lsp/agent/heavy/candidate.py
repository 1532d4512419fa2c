"""One candidate of a heavy run: its settings (temperature, plan), its run result and its
evidence; and the view selection and events need of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k2lsp.agent.heavy.evidence import Evidence

FINISHED_OK = ("success", "tests_failed")
MAX_DIFF_CHARS = 20_000


@dataclass
class Candidate:
    """One of the N attempts."""

    index: int
    run_id: str
    temperature: float
    plan: str
    state: str = "queued"  # queued | running | verifying | done
    result: Any = None  # k2lsp.agent.session.RunResult once the run ended
    evidence: Evidence | None = None
    error: str = ""
    error_outcome: str = ""  # the outcome of an error raised before the run could start

    @property
    def label(self) -> str:
        """`c1`, `c2`, … (1-based, for people)."""
        return f"c{self.index + 1}"

    @property
    def outcome(self) -> str:
        """The run's outcome value ('' while it runs, 'cancelled' when it never started)."""
        if self.result is None:
            return self.error_outcome or ("cancelled" if self.state != "running" else "")
        return str(self.result.outcome.value)

    @property
    def changed(self) -> bool:
        """Whether the candidate changed any file."""
        return bool(self.result is not None and self.result.changes)

    @property
    def diff(self) -> str:
        """The candidate's unified diff ('' when none)."""
        return self.result.changes.diff() if self.changed else ""

    @property
    def cost_usd(self) -> float:
        """What the candidate's requests cost."""
        return float(self.result.usage.cost_usd) if self.result is not None else 0.0

    @property
    def summary(self) -> str:
        """The run's summary (or why it did not run)."""
        if self.result is None:
            return self.error or "did not run"
        return str(self.result.summary or "")

    def usage(self) -> dict[str, int]:
        """Token counts of the candidate's requests."""
        u = self.result.usage if self.result is not None else None
        return {
            "prompt_tokens": int(u.prompt_tokens) if u else 0,
            "cached_tokens": int(u.cached_tokens) if u else 0,
            "completion_tokens": int(u.completion_tokens) if u else 0,
        }

    def record(self) -> dict[str, Any]:
        """The candidate as JSON: outcome, evidence, cost, tokens, branch-free identity."""
        return {
            "candidate": self.label,
            "run_id": self.run_id,
            "outcome": self.outcome,
            "temperature": self.temperature,
            "plan": self.plan,
            "steps": int(self.result.steps) if self.result is not None else 0,
            "cost_usd": round(self.cost_usd, 6),
            **self.usage(),
            "summary": self.summary[:2000],
            "diff": self.diff[:MAX_DIFF_CHARS],  # for a preview of this alternative
            "evidence": self.evidence.to_dict() if self.evidence else None,
        }
