"""The K2 judge: compares the finalists' diffs pairwise with a rubric (correctness,
minimality, style), each pair in both orders so position bias shows as a disagreement.

Each comparison is one request without tools; the reply ends with a JSON verdict
`{"winner": "A" | "B" | "tie", "reason": "..."}`. The request and the full reply (reasoning
included) go into the heavy run's trajectory; each verdict is a `judge_verdict` event.
Scores: a pair whose two orders agree gives the winner 1 point; a tie, a split (one order
ties) or a disagreement (the orders pick different candidates) gives each 0.5, and the last
two are reported. The highest score wins; a tie at the top is reported and broken by the
smaller diff, then candidate order.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

from k2lsp.agent.heavy.budget import Pool
from k2lsp.agent.heavy.candidate import Candidate
from k2lsp.errors import K2lspError

MAX_FINALISTS = 4  # at most 12 requests (each pair both ways)
MAX_DIFF_CHARS = 30_000
JUDGE_MARKER = "You judge two candidate changes"
RUBRIC = f"""\
{JUDGE_MARKER} (A and B) made by coding agents for the same task in the same
repository. Both already pass the tests k2lsp ran. Compare them with this rubric, in order:
1. Correctness: does the change solve the task for every input the task implies, without
   breaking other behaviour? Look for edge cases, wrong conditions, leftover debug code.
2. Minimality: does it change only what the task needs?
3. Style: does it follow the surrounding code's conventions and stay readable?
Reason briefly, then end your reply with one line of JSON and nothing after it:
{{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}}
"""


@dataclass
class Verdict:
    """One comparison: who was A and B, what the judge said."""

    a: str
    b: str
    winner: str  # a label or "tie"
    reason: str


@dataclass
class JudgeResult:
    """The judge's scores, verdicts and what it could not settle."""

    winner: Candidate | None = None
    scores: dict[str, float] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the summary event."""
        return {
            "winner": self.winner.label if self.winner else None,
            "scores": self.scores,
            "verdicts": [asdict(v) for v in self.verdicts],
            "disagreements": self.disagreements,
            "ties": self.ties,
            "skipped": self.skipped,
        }


def judge_messages(task: str, a: Candidate, b: Candidate) -> list[dict[str, Any]]:
    """The request comparing `a` (as A) with `b` (as B)."""

    def part(name: str, c: Candidate) -> str:
        ev = c.evidence
        tests = ev.suite if ev else "unknown"
        diff = c.diff
        if len(diff) > MAX_DIFF_CHARS:
            diff = diff[:MAX_DIFF_CHARS] + "\n[... diff cut ...]\n"
        return f"## Candidate {name}\nTests: {tests}\n```diff\n{diff}```"

    user = f"Task: {task.strip()}\n\n{part('A', a)}\n\n{part('B', b)}"
    return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": user}]


_JSON = re.compile(r"\{[^{}]*\"winner\"[^{}]*\}", re.S)


def parse_verdict(text: str) -> tuple[str, str]:
    """('A' | 'B' | 'tie', reason) from the judge's reply; ('tie', why) when unreadable."""
    for match in reversed(_JSON.findall(text or "")):
        try:
            obj = json.loads(match)
        except ValueError:
            continue
        winner = str(obj.get("winner", "")).strip().upper()
        if winner in ("A", "B", "TIE"):
            return ("tie" if winner == "TIE" else winner), str(obj.get("reason", ""))[:500]
    return "tie", "the judge's reply had no readable verdict"


async def judge(
    client: Any,
    task: str,
    finalists: list[Candidate],
    pool: Pool,
    *,
    emit: Any,
    trajectory: Any = None,
    run_id: str = "",
    on_usage: Any = None,
) -> JudgeResult:
    """Compare `finalists` pairwise both ways; see the module doc for the scoring."""
    out = JudgeResult(scores={c.label: 0.0 for c in finalists})
    ranked = sorted(finalists, key=lambda c: (c.evidence.diff_lines if c.evidence else 0, c.index))
    if len(ranked) > MAX_FINALISTS:
        dropped = ", ".join(c.label for c in ranked[MAX_FINALISTS:])
        out.skipped = f"only the {MAX_FINALISTS} smallest diffs were judged ({dropped} were not)"
        ranked = ranked[:MAX_FINALISTS]
        out.scores = {c.label: 0.0 for c in ranked}
    step = 0
    for x, y in combinations(ranked, 2):
        picks = []
        for a, b in ((x, y), (y, x)):
            try:
                pool.check()
                step += 1
                picks.append(
                    await _ask(
                        client, task, (a, b), out, pool, emit, trajectory, run_id, step, on_usage
                    )
                )
            except K2lspError as exc:
                out.skipped = f"judging stopped: {exc}"
                return _decide(out, ranked)
        _score(out, x.label, y.label, picks)
    return _decide(out, ranked)


async def _ask(
    client: Any,
    task: str,
    pair: tuple[Candidate, Candidate],
    out: JudgeResult,
    pool: Pool,
    emit: Any,
    trajectory: Any,
    run_id: str,
    step: int,
    on_usage: Any = None,
) -> str:
    a, b = pair
    messages = judge_messages(task, a, b)
    if trajectory is not None:
        trajectory.request(run_id, step, messages, [])
    turn = await client.complete(messages, [])
    for usage in [*turn.failed_attempts, turn.usage]:
        pool.add(usage)
    if on_usage is not None:
        on_usage(turn.usage)
    if trajectory is not None:
        trajectory.response(run_id, step, client.history_message(turn), asdict(turn.usage), None)
    side, reason = parse_verdict(turn.content or "")
    label = a.label if side == "A" else b.label if side == "B" else "tie"
    out.verdicts.append(Verdict(a.label, b.label, label, reason))
    emit("judge_verdict", a=a.label, b=b.label, winner=label, reason=reason)
    return label


def _score(out: JudgeResult, x: str, y: str, picks: list[str]) -> None:
    first, second = picks
    if first == second and first != "tie":
        out.scores[first] += 1.0
        return
    out.scores[x] += 0.5
    out.scores[y] += 0.5
    if first == second:
        out.ties.append(f"{x} vs {y}: the judge called it a tie both ways")
    elif "tie" in (first, second):
        pick = first if first != "tie" else second
        out.disagreements.append(f"{x} vs {y}: one order preferred {pick}, the other a tie")
    else:
        out.disagreements.append(
            f"{x} vs {y}: the judge preferred whichever came {'first' if first == x else 'second'}"
            " (position bias); counted as a tie"
        )


def _decide(out: JudgeResult, ranked: list[Candidate]) -> JudgeResult:
    if not ranked:
        return out
    top = max(out.scores.get(c.label, 0.0) for c in ranked)
    best = [c for c in ranked if out.scores.get(c.label, 0.0) == top]
    out.winner = best[0]  # `ranked` is by diff size, then candidate order
    if len(best) > 1:
        out.ties.append(
            f"{', '.join(c.label for c in best)} tied at {top:g} point(s); "
            f"{best[0].label} taken for its smaller diff (then candidate order)"
        )
    return out
