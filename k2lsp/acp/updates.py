"""k2lsp events -> ACP `session/update` payloads.

One `UpdateMapper` per turn (live or replayed from a trajectory): reasoning becomes
`agent_thought_chunk`, content `agent_message_chunk`, tool calls `tool_call` /
`tool_call_update` (with a kind, the locations in the user's folder, and diff content for
edits), the task ledger a `plan`, usage a `usage_update`. Pure: no I/O, so the live stream and
`session/load` replay map the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acp import helpers, schema

from k2lsp.agent.compaction import Ledger
from k2lsp.agent.events import Event

KINDS: dict[str, str] = {
    "read_file": "read",
    "git_status": "read",
    "git_diff": "read",
    "git_log": "read",
    "list_files": "search",
    "search": "search",
    "repo_map": "search",
    "find_symbol": "search",
    "edit_file": "edit",
    "replace_symbol": "edit",
    "insert_code": "edit",
    "apply_patch": "edit",
    "create_file": "edit",
    "delete_file": "delete",
    "run_tests": "execute",
    "run_command": "execute",
}
TEXT_CAP = 4_000  # characters of a tool's output shown in the panel
DEFAULT_CONTEXT = 262_144  # K2's window, when the settings do not say


def tool_kind(name: str) -> str:
    """The ACP tool kind of a k2lsp tool (`fetch` for MCP tools, `other` when unknown)."""
    if name.startswith("mcp__"):
        return "fetch"
    return KINDS.get(name, "other")


def hunks(diff: str) -> list[tuple[str, str]]:
    """(old, new) text of each hunk of a one-file unified diff (context lines in both)."""
    out: list[tuple[list[str], list[str]]] = []
    for line in diff.splitlines(keepends=True):
        if line.startswith("@@"):
            out.append(([], []))
        elif not out or line.startswith(("---", "+++", "\\")):
            continue
        elif line.startswith("-"):
            out[-1][0].append(line[1:])
        elif line.startswith("+"):
            out[-1][1].append(line[1:])
        else:
            out[-1][0].append(line[1:])
            out[-1][1].append(line[1:])
    return [("".join(a), "".join(b)) for a, b in out]


class UpdateMapper:
    """Map one run's events to ACP updates; `root` is the user's folder (paths shown there)."""

    def __init__(self, root: Path, goal: str = "", context_length: int | None = None) -> None:
        self.root = Path(root)
        self.ledger = Ledger(goal=goal)
        self.size = context_length or DEFAULT_CONTEXT
        self.open: dict[str, str] = {}  # tool call id -> tool name, while running
        self.diffs: dict[str, list[Any]] = {}  # tool call id -> diff content so far
        self.last_edit_call = ""

    def current_call(self) -> str:
        """The id of the most recent tool call still running ("" when none)."""
        return next(reversed(self.open), "")

    def abs(self, rel: str) -> str:
        """`rel` inside the user's folder, as an absolute path."""
        return str(self.root / rel) if rel and not Path(rel).is_absolute() else rel

    def map(self, event: Event) -> list[Any]:
        """The updates for `event` (often none)."""
        d = event.data
        handler = getattr(self, f"_on_{event.type}", None)
        return handler(d) if handler is not None else []

    def _on_run_started(self, d: dict[str, Any]) -> list[Any]:
        self.ledger.goal = self.ledger.goal or str(d.get("task", ""))
        return [self.plan(done=False)]

    def _on_reasoning(self, d: dict[str, Any]) -> list[Any]:
        text = str(d.get("text", ""))
        return [helpers.update_agent_thought_text(text)] if text else []

    def _on_content(self, d: dict[str, Any]) -> list[Any]:
        text = str(d.get("text", ""))
        return [helpers.update_agent_message_text(text)] if text else []

    def _on_tool_call(self, d: dict[str, Any]) -> list[Any]:
        call_id, name = str(d.get("id", "")), str(d.get("name", ""))
        args = d.get("args")
        self.open[call_id] = name
        if tool_kind(name) in ("edit", "delete"):
            self.last_edit_call = call_id
        return [
            helpers.start_tool_call(
                call_id,
                _title(name, args),
                kind=tool_kind(name),  # type: ignore[arg-type]
                status="in_progress",
                locations=self._locations(args),
                raw_input=args,
            )
        ]

    def _on_edit(self, d: dict[str, Any]) -> list[Any]:
        path = str(d.get("path", ""))
        self.ledger.touch(path)
        call_id = self.last_edit_call if self.last_edit_call in self.open else ""
        content = [
            helpers.tool_diff_content(self.abs(path), new, old or None)
            for old, new in hunks(str(d.get("diff", "")))
        ]
        out: list[Any] = [self.plan(done=False)]
        if call_id and content:
            self.diffs.setdefault(call_id, []).extend(content)
            out.insert(0, helpers.update_tool_call(call_id, content=self.diffs[call_id]))
        return out

    def _on_tool_result(self, d: dict[str, Any]) -> list[Any]:
        call_id = str(d.get("id", ""))
        name = self.open.pop(call_id, str(d.get("name", "")))
        ok = bool(d.get("ok"))
        self.ledger.note_tool(name, ok, str(d.get("summary", "")))
        text = str(d.get("text", ""))
        if len(text) > TEXT_CAP:
            text = text[:TEXT_CAP] + f"\n[… {len(text) - TEXT_CAP} more characters]"
        content: list[Any] = list(self.diffs.pop(call_id, []))
        if text and not content:
            content.append(helpers.tool_content(helpers.text_block(text)))
        return [
            helpers.update_tool_call(
                call_id,
                status="completed" if ok else "failed",
                content=content,
                raw_output={"ok": ok, "summary": d.get("summary", "")},
            )
        ]

    def _on_test_result(self, d: dict[str, Any]) -> list[Any]:
        self.ledger.on_event(Event("test_result", "", 0, d))
        return [self.plan(done=False)]

    def _on_usage(self, d: dict[str, Any]) -> list[Any]:
        used = int(d.get("prompt_tokens") or 0) + int(d.get("completion_tokens") or 0)
        cost = schema.Cost(amount=float(d.get("total_cost_usd") or 0.0), currency="USD")
        return [
            schema.UsageUpdate(session_update="usage_update", used=used, size=self.size, cost=cost)
        ]

    def _on_status(self, d: dict[str, Any]) -> list[Any]:
        if d.get("phase") in ("preflight", "mcp") and d.get("message"):
            return [helpers.update_agent_thought_text(f"[k2lsp] {d['message']}\n")]
        return []

    def _on_run_finished(self, d: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for call_id in list(self.open):  # calls cut short by a cancel
            out.append(helpers.update_tool_call(call_id, status="failed"))
        self.open.clear()
        return [*out, self.plan(done=True)]

    def plan(self, *, done: bool) -> Any:
        """The task ledger as an ACP plan: the goal, each file touched, the last test run."""
        goal = " ".join(self.ledger.goal.split())[:200] or "the task"
        entries = [helpers.plan_entry(goal, priority="high", status=_st(done, True))]
        for path in self.ledger.files_touched:
            entries.append(helpers.plan_entry(f"edit {path}", status="completed"))
        if self.ledger.last_test != "not run yet":
            entries.append(
                helpers.plan_entry(f"tests: {self.ledger.last_test}", status="completed")
            )
        elif self.ledger.files_touched:
            entries.append(helpers.plan_entry("check the change", status=_st(done, False)))
        return helpers.update_plan(entries)

    def _locations(self, args: Any) -> list[Any] | None:
        if not isinstance(args, dict):
            return None
        extra = args.get("paths")
        paths = [args.get("path"), *(extra if isinstance(extra, list) else [])]
        line = args.get("start_line")
        line = line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None
        found = [
            schema.ToolCallLocation(path=self.abs(p), line=line if i == 0 else None)
            for i, p in enumerate(paths)
            if isinstance(p, str) and p
        ]
        return found or None


def _st(done: bool, started: bool) -> Any:
    return "completed" if done else ("in_progress" if started else "pending")


def _title(name: str, args: Any) -> str:
    """A short title: the tool and its main argument."""
    if isinstance(args, dict):
        for key in ("path", "command", "pattern", "name", "symbol"):
            value = args.get(key)
            if isinstance(value, str) and value:
                return f"{name} {' '.join(value.split())[:80]}"
    return name
