"""Follow-ups: continue a conversation (its history and its run copy) with a new request, and
keep or drop a run's conversation when it ends.

    conv = open_conversation(request, settings, repo)       # before run_started; UsageError
    copy = resume_copy(conv)                                # the parked run copy, locked
    messages = continue_messages(conv, request, repo_name)  # history + the follow-up message
    ... the loop runs ...
    settle(result, request, settings, conv, delivered=...)  # park (and record) or clean up

The history is sent back exactly as stored (assistant replies with their `reasoning_content`
and tool calls, one tool message per call), so the host's prefix cache still hits; only the
system prompt is swapped when the follow-up's mode differs (an `ask` continued by a `task`).
Storage and garbage collection: `k2lsp.runs.conversations`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2lsp.agent.prompts import system_prompt
from k2lsp.errors import Outcome
from k2lsp.runs import conversations
from k2lsp.runs.conversations import Conversation

if TYPE_CHECKING:
    from k2lsp.agent.session import RunRequest, RunResult

log = logging.getLogger(__name__)
_GOAL_CHARS = 600


def _state(settings: Any) -> Any:
    return getattr(settings, "state_dir", None)


def open_conversation(request: RunRequest, settings: Any, repo: Path) -> Conversation | None:
    """The conversation `request` continues (None for a new one); UsageError when it cannot."""
    if not request.conversation:
        return None
    return conversations.load(_state(settings), request.conversation, repo)


def resume_copy(conv: Conversation) -> Any:
    """The conversation's run copy, locked for this run (UsageError when busy)."""
    return conversations.resume(conv)


def followup_message(
    task: str, *, context: str = "", focus_paths: list[str] | None = None, turn: int = 2
) -> str:
    """The user message of a follow-up: the request, then any context the front-end supplied."""
    parts = [f"Follow-up request (turn {turn}): {task.strip()}"]
    if focus_paths:
        parts.append("Files this is about: " + ", ".join(focus_paths))
    if context.strip():
        parts.append("Context:\n" + context.strip())
    parts.append("The repository copy still holds every change made earlier in this conversation.")
    return "\n\n".join(parts)


def continue_messages(
    conv: Conversation, request: RunRequest, caught_up: str = ""
) -> list[dict[str, Any]]:
    """The stored history (copied, never mutated) plus the follow-up's user message
    (`caught_up`: the note of `prepare_copy`, if the user's edits were brought in)."""
    msgs = [dict(m) for m in conv.messages]
    system = system_prompt(request.mode, request.read_only)
    if msgs and msgs[0].get("role") == "system" and msgs[0].get("content") != system:
        msgs[0] = {"role": "system", "content": system}
    text = followup_message(
        request.task,
        context=request.context,
        focus_paths=request.focus_paths,
        turn=len(conv.turns) + 1,
    )
    if caught_up:
        text += f"\n\nNote: {caught_up} (re-read them before changing them)."
    msgs.append({"role": "user", "content": text})
    return msgs


def prepare_copy(recorded: Any, copy: Any, overlay: dict[str, str]) -> str:
    """Before a follow-up: bring the user's edits since the last turn into the copy
    (`k2lsp.runs.catchup`), then seed the change record; the note for the user and the model
    ("" when nothing was brought in). A failure to catch up is logged, never fatal."""
    from k2lsp.runs.catchup import catch_up, describe

    note = ""
    try:
        taken = catch_up(copy, overlay)
        note = describe(taken) if taken else ""
    except Exception as exc:  # the follow-up still works on the copy as it was
        log.warning("could not bring the user's edits into the conversation's copy: %s", exc)
    seed_changes(recorded, copy)
    return note


def seed_changes(recorded: Any, copy: Any) -> None:
    """Start a follow-up's record of changes (`ToolContext.changes`) with what the earlier turns
    changed and did not deliver (the copy vs. its base), so the change set delivered at its end
    is the cumulative one and nothing is mistaken for a command's doing."""
    for fc in copy.changes().files:
        if fc.old_path and fc.old_path != fc.path:
            recorded.record(fc.old_path, fc.old_text, None, binary=fc.binary)
            recorded.record(fc.path, None, fc.new_text, binary=fc.binary)
        else:
            recorded.record(fc.path, fc.old_text, fc.new_text, binary=fc.binary)


def ledger_goal(conv: Conversation | None, task: str) -> str:
    """The goal compaction keeps verbatim: the current request, after the earlier ones."""
    if conv is None:
        return task.strip()
    earlier = "; ".join(t.strip() for t in conv.tasks() if t.strip())
    if len(earlier) > _GOAL_CHARS:
        earlier = "…" + earlier[-_GOAL_CHARS:]
    return f"{task.strip()} (follow-up; earlier in this conversation: {earlier})"


def _consistent(messages: list[dict[str, Any]]) -> bool:
    """A history a next request can extend: no tool call left without its result."""
    if not messages:
        return False
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    for msg in messages:
        for call in msg.get("tool_calls") or ():
            if call.get("id") not in answered:
                return False
    return True


def settle(
    result: RunResult,
    request: RunRequest,
    settings: Any,
    conv: Conversation | None,
    *,
    delivered: bool,
    delivery: str = "",
    cleanup: bool = True,
) -> str | None:
    """Keep the run's conversation (record the turn, park the run copy) or remove the copy
    (left in place when not `cleanup`).

    `delivered`: the change set landed in the user's tree (the next turn builds on it).
    Returns the id of the conversation kept, or None."""
    copy = result.run_copy
    if copy is None:
        return None
    keep = int(getattr(settings, "keep_conversations", conversations.DEFAULT_KEEP) or 0)
    usable = result.outcome is not Outcome.CANCELLED and _consistent(result.messages)
    if keep <= 0 or not usable:
        if conv is not None:  # a follow-up that did not finish: the conversation stays as it was
            conversations.park(copy)
            return conv.id
        if cleanup:
            copy.cleanup()
        return None
    if delivered:
        conversations.advance(copy)
    if conv is None:
        conv = Conversation(
            id=copy.run_id, repo=str(copy.source), run_dir=str(copy.run_dir), mode=request.mode
        )
    conv.messages = list(result.messages)
    conv.turns.append(
        {
            "run_id": result.run_id,
            "task": request.task,
            "mode": request.mode,
            "outcome": result.outcome.value,
            "delivery": delivery,
            "ts": time.time(),
        }
    )
    conv.updated = time.time()
    conversations.save(_state(settings), conv)
    conversations.park(copy)
    _trim(settings)
    return conv.id


def _trim(settings: Any) -> None:
    """Apply the keep limits now (a headless user may never start the server's clean-up)."""
    from k2lsp.runs.gc import collect

    try:
        collect(
            _state(settings),
            keep_conversations=int(getattr(settings, "keep_conversations", 5)),
            conversation_days=float(getattr(settings, "conversation_days", 7.0)),
        )
    except Exception as exc:  # clean-up never changes how the run ended
        log.warning("could not trim old conversations: %s", exc)
