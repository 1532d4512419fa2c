"""`$/progress` for one run, as a plain LSP client (eglot, Helix, Kate…) shows it.

The message says what the run is doing in words (`step 3 · reading calc.py · 10,147 tokens ·
$0.0213`); the percentage is the share of the tightest budget the user set (steps, tokens,
dollars, wall time) and is left out when no budget was set; an identical report is never
sent twice, and reports are rate-limited (the last state always arrives, a little later).
A client that cannot show `$/progress` (no `window.workDoneProgress`, e.g. eglot 1.9) gets the
same line as a `window/showMessage` of type Log, at most one every two seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

MIN_INTERVAL_S = 0.25  # at most four reports a second
MESSAGE_INTERVAL_S = 2.0  # progress as window/showMessage: at most one every two seconds
# What a tool is doing, in words; the argument shown after it (the first one present).
_TOOL_WORDS = {
    "read_file": "reading",
    "list_files": "listing",
    "search": "searching",
    "repo_map": "mapping the repository",
    "find_symbol": "finding",
    "replace_symbol": "editing",
    "insert_code": "editing",
    "edit_file": "editing",
    "apply_patch": "patching",
    "create_file": "creating",
    "delete_file": "deleting",
    "run_tests": "running tests",
    "run_command": "running",
    "git_status": "checking git status",
    "git_diff": "reading the diff",
    "git_log": "reading the git log",
}
_TOOL_ARGS = ("path", "pattern", "name", "symbol", "command")
_PHASES = {
    "model": "thinking",
    "retrying": "retrying the model host",
    "compacting": "compacting the conversation",
    "preflight": "checking the tests",
    "test_evidence": "checking the test evidence",
}


@dataclass
class Limits:
    """The budgets the user set for a run (None: not set, so no percentage from it)."""

    steps: int | None = None
    tokens: int | None = None
    usd: float | None = None
    seconds: float | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """Budgets from `Settings`: only those set explicitly (the step cap's default of 300
        and the editor's default wall time are safety nets, not a budget to show)."""
        from k2lsp.agent.budgets import EDITOR_DEFAULT_TIMEOUT_S

        explicit: set[str] = set(getattr(settings, "model_fields_set", ()))
        timeout = getattr(settings, "timeout_s", None)
        return cls(
            steps=settings.max_steps if "max_steps" in explicit else None,
            tokens=getattr(settings, "max_tokens", None),
            usd=getattr(settings, "budget_usd", None),
            seconds=timeout if timeout and timeout != EDITOR_DEFAULT_TIMEOUT_S else None,
        )


def describe_tool(name: str, args: Any) -> str:
    """`reading calc.py`, `running tests`, `searching 'def add'`."""
    word = _TOOL_WORDS.get(name, f"running {name}")
    if not isinstance(args, dict):
        return word
    for key in _TOOL_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            value = " ".join(value.split())
            shown = value if len(value) <= 40 else value[:39] + "…"
            return f"{word} {shown}" if key == "path" else f"{word} '{shown}'"
    return word


class Progress:
    """The `$/progress` reports of one run's token."""

    def __init__(
        self,
        ls: LanguageServer,
        token: str,
        limits: Limits,
        interval: float = MIN_INTERVAL_S,
        *,
        title: str = "",
    ) -> None:
        self.ls = ls
        self.token = token
        # a client without window.workDoneProgress (eglot 1.9) gets the same line as a
        # window/showMessage of type Log, at most every MESSAGE_INTERVAL_S (`title` set)
        self.title = title
        self.limits = limits
        self.interval = interval
        self.step = 0
        self.doing = "starting"
        self.tokens = 0
        self.cost = 0.0
        self.started = time.monotonic()
        self.sent = 0  # reports sent
        self._last: tuple[str, int | None] | None = None
        self._last_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # --- state -----------------------------------------------------------------------------
    def track(self, kind: str, data: dict[str, Any]) -> None:
        """Follow one (coalesced) event of the run."""
        if kind == "status":
            self.step = int(data.get("step") or self.step or 0)
            phase = str(data.get("phase") or "")
            self.doing = _PHASES.get(phase, phase or "thinking")
            if phase == "retrying" and data.get("message"):
                self.doing = f"retrying: {str(data['message'])[:80]}"
        elif kind == "reasoning":
            self.doing = "thinking"
        elif kind == "content":
            self.doing = "writing the answer"
        elif kind == "tool_call":
            self.doing = describe_tool(str(data.get("name") or ""), data.get("args"))
        elif kind == "tool_result":
            self.doing = "thinking"
        elif kind == "usage":
            self.tokens = int(data.get("total_prompt_tokens") or 0) + int(
                data.get("total_completion_tokens") or 0
            )
            self.cost = float(data.get("total_cost_usd") or 0.0)

    def message(self) -> str:
        """One line: step, what is happening, tokens, cost."""
        step = (
            f"step {self.step} of {self.limits.steps}" if self.limits.steps else f"step {self.step}"
        )
        parts = [step if self.step else "", self.doing]
        if self.tokens:
            parts.append(f"{self.tokens:,} tokens · ${self.cost:.4f}")
        return " · ".join(p for p in parts if p)

    def percentage(self) -> int | None:
        """Share of the tightest budget used, 0–100; None without a budget."""
        lim, shares = self.limits, []
        if lim.steps:
            shares.append(self.step / lim.steps)
        if lim.tokens:
            shares.append(self.tokens / lim.tokens)
        if lim.usd:
            shares.append(self.cost / lim.usd)
        if lim.seconds:
            shares.append((time.monotonic() - self.started) / lim.seconds)
        return min(100, int(100 * max(shares))) if shares else None

    # --- sending (event loop) --------------------------------------------------------------
    def report(self, *, force: bool = False) -> None:
        """Send the current state unless it equals the last one; `force` skips the rate
        limit (a tool starting), otherwise a report too soon is sent when the interval ends."""
        force = force and not self.title  # messages are never forced
        if self._timer is not None and not force:
            return  # a report is already due; it will carry the latest state
        wait = self._last_at + self.interval - time.monotonic()
        if wait > 0 and not force:
            self._timer = asyncio.get_running_loop().call_later(wait, self._due)
            return
        self._send()

    def _due(self) -> None:
        self._timer = None
        self._send()

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = (self.message(), self.percentage())
        if now == self._last:
            return
        self._last, self._last_at = now, time.monotonic()
        self.sent += 1
        if self.title:
            text = f"{self.title} · {now[0]}" + (f" ({now[1]}%)" if now[1] is not None else "")
            self.ls.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Log, message=text)
            )
            return
        self.ls.work_done_progress.report(
            self.token,
            types.WorkDoneProgressReport(message=now[0], percentage=now[1], cancellable=True),
        )

    def end(self, message: str) -> None:
        """Send the last state if one is due, then end the progress."""
        if self._timer is not None:
            self._timer.cancel()  # the run's result follows; a late step line would only repeat
            self._timer = None
        if not self.title:
            self.ls.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message[:200])
            )
