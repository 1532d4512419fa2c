"""Context compaction without a model call.

Before the context overflows (about 85% full, or under 50k tokens left), and once after the
host reports an overflow, the history is rewritten as:

    system prompt, task message                       (kept byte for byte)
    one user note: the task ledger (verbatim) + a deterministic summary of older steps
    the most recent assistant tool-call messages with their tool results (whole pairs)

The ledger (goal, plan, files touched, last test status, decisions) is maintained from the
run's events and tool results, so it survives any number of compactions. Reasoning of
messages before the current tool loop is dropped (the K2 template hides it anyway); an
assistant tool-call message that loses its reasoning gets a short placeholder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from k2lsp.agent.events import Event
from k2lsp.tools.base import cap_output

NOTE_MARK = "[k2lsp: earlier steps were compacted to save context]"
SUMMARY_HEAD = "## Earlier steps (summarised)"
REASONING_PLACEHOLDER = "(earlier reasoning omitted to save context)"
REASONING_KEYS = ("reasoning_content", "reasoning")
RESERVE_TOKENS = 50_000


@dataclass
class Ledger:
    """What must survive compaction verbatim."""

    goal: str
    plan: str = ""
    files_touched: list[str] = field(default_factory=list)
    last_test: str = "not run yet"
    decisions: list[str] = field(default_factory=list)
    max_decisions: int = 12

    def on_event(self, event: Event) -> None:
        """Follow edits and test results (an `EventSink`)."""
        if event.type == "edit":
            self.touch(str(event.data.get("path", "")))
        elif event.type == "test_result":
            d = event.data
            self.last_test = (
                f"{d.get('passed', 0)} passed, {d.get('failed', 0)} failed, "
                f"{d.get('errors', 0)} errors ({d.get('command', 'tests')})"
            )

    def touch(self, path: str) -> None:
        """Record a changed file."""
        if path and path not in self.files_touched:
            self.files_touched.append(path)

    def note_reply(self, reasoning: str | None, content: str | None) -> None:
        """Take the plan from the first reasoning and decisions from stated content."""
        if not self.plan and reasoning:
            self.plan = _clip(reasoning.strip(), 800)
        if content and content.strip():
            self.decide(_clip(content.strip(), 300))

    def decide(self, text: str) -> None:
        """Record a decision or notable fact (keeps the most recent ones)."""
        self.decisions.append(text)
        del self.decisions[: -self.max_decisions]

    def note_tool(self, name: str, ok: bool, summary: str) -> None:
        """Note refused edits and failed test runs as decisions worth keeping."""
        if not ok and name not in ("read_file", "search", "list_files", "find_symbol"):
            self.decide(f"{name} failed: {_clip(summary, 200)}")

    def render(self) -> str:
        """The ledger as text, in a fixed layout."""
        files = ", ".join(self.files_touched) or "none yet"
        decisions = "\n".join(f"- {d}" for d in self.decisions) or "- none yet"
        return (
            "## Task ledger\n"
            f"Goal: {self.goal}\n"
            f"Plan (first thoughts): {self.plan or 'not stated yet'}\n"
            f"Files touched: {files}\n"
            f"Last test status: {self.last_test}\n"
            f"Decisions and notable results:\n{decisions}"
        )


def message_chars(msg: dict[str, Any]) -> int:
    """Rough size of a message in characters (text fields plus overhead)."""
    n = 16
    for key in ("content", *REASONING_KEYS):
        value = msg.get(key)
        if isinstance(value, str):
            n += len(value)
    for call in msg.get("tool_calls") or ():
        fn = call.get("function", {})
        n += 32 + len(fn.get("name", "")) + len(fn.get("arguments", ""))
    return n


def should_compact(estimated_tokens: int, context_length: int) -> bool:
    """True at about 85% of the context or when fewer than 50k tokens would be left."""
    limit = min(0.85 * context_length, max(context_length - RESERVE_TOKENS, 0.5 * context_length))
    return estimated_tokens > limit


def _units(body: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split history into units: an assistant message with its tool results, or one message."""
    units: list[list[dict[str, Any]]] = []
    for msg in body:
        if msg.get("role") == "tool" and units and units[-1][0].get("role") == "assistant":
            units[-1].append(msg)
        else:
            units.append([msg])
    return units


def summarise_unit(unit: list[dict[str, Any]]) -> list[str]:
    """Deterministic one-line-per-call summary of a history unit."""
    first = unit[0]
    role = first.get("role")
    if role != "assistant":
        return [f"- {role}: {_clip(_text(first), 240)}"]
    lines = []
    if _text(first).strip():
        lines.append(f"- assistant said: {_clip(_text(first), 240)}")
    results = {m.get("tool_call_id"): _text(m) for m in unit[1:]}
    for call in first.get("tool_calls") or ():
        fn = call.get("function", {})
        args = _clip(_compact_args(fn.get("arguments", "")), 160)
        result = results.get(call.get("id"), "(no result)")
        first_line = next((ln for ln in result.splitlines() if ln.strip()), "(empty)")
        size = f" [{len(result):,} chars]" if len(result) > 200 else ""
        lines.append(f"- {fn.get('name')}({args}) -> {_clip(first_line, 160)}{size}")
    return lines


def compact(
    messages: list[dict[str, Any]], ledger: Ledger, *, keep_chars: int, max_units: int | None = None
) -> list[dict[str, Any]]:
    """A new, shorter history (the input list is not modified); `messages` itself when
    nothing can be dropped or shrunk."""
    head, body = messages[:2], messages[2:]
    old_summary: list[str] = []
    if body and body[0].get("role") == "user" and _text(body[0]).startswith(NOTE_MARK):
        old_summary = _old_summary_lines(_text(body[0]))
        body = body[1:]
    units = _units(body)
    kept: list[list[dict[str, Any]]] = []
    used = 0
    for unit in reversed(units):
        size = sum(message_chars(m) for m in unit)
        if kept and (used + size > keep_chars or (max_units and len(kept) >= max_units)):
            break
        kept.insert(0, unit)
        used += size
    dropped = units[: len(units) - len(kept)]
    if not dropped and used <= keep_chars:
        return messages  # nothing to gain: keep the prefix (and the host's cache) intact
    if kept and used > keep_chars:
        kept[-1] = _shrink_unit(kept[-1], keep_chars)
    summary = old_summary + [line for unit in dropped for line in summarise_unit(unit)]
    note = {"role": "user", "content": _note(ledger, summary)}
    tail = _drop_old_reasoning([m for unit in kept for m in unit])
    return [*head, note, *tail]


def _note(ledger: Ledger, summary: list[str]) -> str:
    lines = summary[-200:]
    omitted = len(summary) - len(lines)
    if omitted:
        lines = [f"- ({omitted} earlier lines omitted)", *lines]
    return (
        f"{NOTE_MARK}\n{ledger.render()}\n\n{SUMMARY_HEAD}\n"
        + ("\n".join(lines) or "- none")
        + "\n\nContinue the task from here. Re-read any file you need: earlier tool output "
        "is no longer in the conversation."
    )


def _old_summary_lines(text: str) -> list[str]:
    if SUMMARY_HEAD not in text:
        return []
    part = text.split(SUMMARY_HEAD, 1)[1].split("\n\nContinue the task", 1)[0]
    return [ln for ln in part.strip().splitlines() if ln.startswith("- ") and ln != "- none"]


def _shrink_unit(unit: list[dict[str, Any]], keep_chars: int) -> list[dict[str, Any]]:
    """Cap the tool results of a unit that alone exceeds the budget (pairs stay whole)."""
    n_results = max(1, len(unit) - 1)
    share = max(2_000, keep_chars // (n_results + 1))
    out = [unit[0]]
    for msg in unit[1:]:
        text = _text(msg)
        if len(text) > share:
            msg = {**msg, "content": cap_output(text, share, "call the tool again for details")}
        out.append(msg)
    return out


def _drop_old_reasoning(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop reasoning before the current tool loop (after the last reply without tool calls)."""
    last_final = max(
        (i for i, m in enumerate(msgs) if m.get("role") == "assistant" and not m.get("tool_calls")),
        default=-1,
    )
    out = []
    for i, msg in enumerate(msgs):
        if i <= last_final and msg.get("role") == "assistant":
            msg = dict(msg)
            msg.pop("reasoning_details", None)
            for key in REASONING_KEYS:
                if key in msg:
                    if msg.get("tool_calls"):
                        msg[key] = REASONING_PLACEHOLDER
                    else:
                        del msg[key]
        out.append(msg)
    return out


def _text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    return content if isinstance(content, str) else ""


def _compact_args(raw: str) -> str:
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError):
        return raw


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
