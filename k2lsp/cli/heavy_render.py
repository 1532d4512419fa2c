"""The terminal renderer of a heavy run: N interleaved streams are unreadable as text, so each
candidate shows one line per tool call, result and test run (prefixed `c1 │`), then a table of
every candidate with its evidence, the winner and why (`--json` is the full stream)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from k2lsp.agent.events import Event
from k2lsp.cli.render import _write, fmt_args, one_line


class HeavyTerminalRenderer:
    """An EventSink for `k2lsp --task … --heavy N` without `--json`."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.labels: dict[str, str] = {}  # candidate run id -> c1, c2, ...
        self.heavy_id = ""

    def __call__(self, event: Event) -> None:
        """Render `event`."""
        d = event.data
        if event.type == "run_started" and not self.heavy_id:
            self.heavy_id = event.run_id
            self._line(f"k2lsp heavy · {d.get('model')} via {d.get('provider')} in {d.get('repo')}")
        elif event.type == "heavy_started":
            self.labels = {rid: f"c{i + 1}" for i, rid in enumerate(d.get("candidate_ids", []))}
            temps = ", ".join(f"{t:g}" for t in d.get("temperatures", []))
            self._line(
                f"{d.get('candidates')} candidates · temperature {temps} "
                f"({d.get('temperature_note')}) · {d.get('admission')}"
            )
        elif event.run_id in self.labels:
            self._candidate(self.labels[event.run_id], event)
        elif event.type == "candidate_finished":
            self._finished(d)
        elif event.type == "judge_verdict":
            self._line(
                f"judge: {d.get('a')} vs {d.get('b')} → {d.get('winner')}: {d.get('reason')}"
            )
        elif event.type == "heavy_selected":
            self._selected(d)
        elif event.type == "status" and d.get("phase") == "queued":
            self._line(f"… {d.get('message')}")
        elif event.type == "run_finished" and event.run_id == self.heavy_id:
            self._line(f"── {d.get('outcome')} (exit {d.get('exit_code')})")
            if d.get("summary"):
                self._line(str(d["summary"]))

    def _candidate(self, label: str, event: Event) -> None:
        d = event.data
        if event.type == "tool_call":
            self._line(f"{label} │ → {d.get('name')} {fmt_args(d.get('args'))}")
        elif event.type == "tool_result" and not d.get("ok"):
            self._line(f"{label} │   ✗ {one_line(d.get('summary') or '')}")
        elif event.type == "test_result":
            self._line(
                f"{label} │   tests: {d.get('passed', 0)} passed, {d.get('failed', 0)} failed"
            )
        elif event.type == "run_finished":
            self._line(f"{label} │ ended {d.get('outcome')}")

    def _finished(self, d: dict[str, Any]) -> None:
        ev = d.get("evidence") or {}
        self._line(
            f"{d.get('candidate')} checked: {ev.get('suite') or d.get('outcome')} · "
            f"diff {ev.get('diff_lines', 0)} lines · ${float(d.get('cost_usd') or 0):.4f}"
        )

    def _selected(self, d: dict[str, Any]) -> None:
        self._line("candidates:")
        excluded = d.get("excluded") or {}
        for rec in d.get("candidates", []):
            label = rec.get("candidate")
            ev = rec.get("evidence") or {}
            mark = "★" if label == d.get("winner") else " "
            why = excluded.get(label, "winner" if mark == "★" else "finalist")
            self._line(
                f" {mark} {label} {rec.get('outcome'):<13} diff {ev.get('diff_lines', 0):>4} · "
                f"${float(rec.get('cost_usd') or 0):.4f} · {one_line(str(why), 90)}"
            )
        for line in [*(d.get("ties") or []), *(d.get("disagreements") or [])]:
            self._line(f"   note: {line}")
        self._line(f"prefix cache: {float(d.get('cache_ratio') or 0):.0%} of prompt tokens cached")

    def _line(self, text: str) -> None:
        _write(self.out, text + "\n")
