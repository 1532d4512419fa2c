"""Renderers of the event stream for the headless CLI.

- `JsonRenderer`: exactly the event stream, one JSON object per line (`--json`).
- `TerminalRenderer`: reasoning dimmed, content plain, one line per tool call and one per
  result, and (on a TTY) a live status line on stderr with step, tokens and cost.
Both are `EventSink`s; they never raise on a closed pipe. They do not redact: every event
reaches them through the run's `redacting` fan-out, and what they write goes through the
CLI's `SafeStream` boundary (`k2lsp.redact.boundary`), the last pass before the terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from k2lsp.agent.events import Event, EventSink

DIM, RESET, BOLD, RED, GREEN, YELLOW = (
    "\x1b[2m",
    "\x1b[0m",
    "\x1b[1m",
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[33m",
)


class JsonRenderer:
    """Writes each event as one JSON line."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        """Write `event`."""
        line = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))
        _write(self.out, line + "\n")


def fmt_tokens(n: int) -> str:
    """12345 -> '12.3k'."""
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def one_line(text: str, limit: int = 110) -> str:
    """Collapse whitespace and cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_args(args: Any) -> str:
    """Tool arguments as `k=v` pairs on one line."""
    if isinstance(args, dict):
        parts = []
        for key, value in args.items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            parts.append(f"{key}={one_line(shown, 60)}")
        return " ".join(parts)
    return one_line(str(args), 80)


class TerminalRenderer:
    """Human-readable rendering; colours and the live status line only on a TTY."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        color: bool | None = None,
        status: bool | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = self.out.isatty() if color is None else color
        self.live = self.err.isatty() if status is None else status
        self.kind: str | None = None  # what the current output line is streaming
        self.step, self.max_steps, self.tokens, self.cost = 0, 0, 0, 0.0
        self._status_shown = False

    def __call__(self, event: Event) -> None:
        """Render `event`."""
        handler = getattr(self, "_on_" + event.type, None)
        if handler is not None:
            handler(event.data)

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def _print(self, text: str) -> None:
        self._clear_status()
        _write(self.out, text)

    def _line(self, text: str) -> None:
        self._end_stream()
        self._print(text + "\n")
        self._draw_status()

    def _end_stream(self) -> None:
        if self.kind is not None:
            self._print("\n")
            self.kind = None

    def _delta(self, kind: str, text: str) -> None:
        if self.kind != kind:
            self._end_stream()
            if kind == "reasoning" and not self.color:
                self._print("[thinking] ")
            self.kind = kind
        self._print(self._c(DIM, text) if kind == "reasoning" else text)

    def _on_run_started(self, d: dict[str, Any]) -> None:
        self._line(
            self._c(
                BOLD,
                f"k2lsp · {d.get('model')} via {d.get('provider')} · "
                f"{d.get('mode')} in {d.get('repo')}",
            )
        )

    def _on_reasoning(self, d: dict[str, Any]) -> None:
        self._delta("reasoning", d.get("text", ""))

    def _on_content(self, d: dict[str, Any]) -> None:
        self._delta("content", d.get("text", ""))

    def _on_tool_call(self, d: dict[str, Any]) -> None:
        self._line(self._c(BOLD, f"→ {d.get('name')}") + " " + fmt_args(d.get("args")))

    def _on_tool_result(self, d: dict[str, Any]) -> None:
        ok = bool(d.get("ok"))
        mark = self._c(GREEN, "  ✓") if ok else self._c(RED, "  ✗")
        self._line(f"{mark} {one_line(d.get('summary') or d.get('text') or '')}")

    def _on_edit(self, d: dict[str, Any]) -> None:
        diff = str(d.get("diff", ""))
        plus = sum(1 for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++"))
        minus = sum(
            1 for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")
        )
        self._line(self._c(YELLOW, f"  ✎ {d.get('path')} (+{plus} -{minus})"))

    def _on_test_result(self, d: dict[str, Any]) -> None:
        failed = (d.get("failed") or 0) + (d.get("errors") or 0)
        text = (
            f"  tests: {d.get('passed', 0)} passed, {d.get('failed', 0)} failed, "
            f"{d.get('errors', 0)} errors"
        )
        self._line(self._c(RED if failed else GREEN, text))

    def _on_usage(self, d: dict[str, Any]) -> None:
        self.tokens = int(d.get("total_prompt_tokens", 0)) + int(
            d.get("total_completion_tokens", 0)
        )
        self.cost = float(d.get("total_cost_usd", 0.0))
        self._draw_status()

    def _on_status(self, d: dict[str, Any]) -> None:
        if d.get("step") is not None:
            self.step, self.max_steps = int(d["step"]), int(d.get("max_steps") or 0)
        if d.get("phase") not in (None, "model"):
            self._line(self._c(YELLOW, f"  … {d.get('message')}"))
        else:
            self._draw_status()

    def _on_run_finished(self, d: dict[str, Any]) -> None:
        self._end_stream()
        self._clear_status()
        colour = GREEN if d.get("exit_code") == 0 else RED
        head = (
            f"── {d.get('outcome')} (exit {d.get('exit_code')}) · {self.step} steps · "
            f"{fmt_tokens(self.tokens)} tokens · ${self.cost:.4f}"
        )
        _write(self.err, self._c(colour, head) + "\n")
        if d.get("exit_code") != 0 and d.get("summary"):
            _write(self.err, str(d["summary"]) + "\n")

    def status_text(self) -> str:
        """The live status line."""
        return (
            f"[step {self.step}/{self.max_steps} · {fmt_tokens(self.tokens)} tokens · "
            f"${self.cost:.4f}]"
        )

    def _draw_status(self) -> None:
        if self.live and self.kind is None and self.max_steps:
            _write(self.err, "\r\x1b[K" + self._c(DIM, self.status_text()))
            self._status_shown = True

    def _clear_status(self) -> None:
        if self._status_shown:
            _write(self.err, "\r\x1b[K")
            self._status_shown = False


def _write(stream: TextIO, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass


def renderer(json_lines: bool, out: TextIO) -> EventSink:
    """The sink of a headless command: JSON lines (`--json`) or the terminal rendering on
    `out`, with the status line on stderr (both through the CLI's `SafeStream` boundary)."""
    from k2lsp.redact.boundary import SafeStream

    if json_lines:
        return JsonRenderer(out)  # type: ignore[return-value]
    return TerminalRenderer(out=out, err=SafeStream(sys.stderr))  # type: ignore[arg-type, return-value]
