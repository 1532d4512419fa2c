"""ACP sessions on disk, so `session/load` can resume one: its folder, mode and turns (each
turn's prompt, run id and trajectory). The history is replayed from the trajectories, the same
redacted event stream the turn produced live.

    <state_dir>/acp/sessions/<session id>.json
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from acp import helpers

from k2lsp.acp.updates import UpdateMapper
from k2lsp.agent.events import EVENT_FIELDS, Event
from k2lsp.errors import UsageError

SESSION_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Turn:
    """One prompt of a session and the run that answered it."""

    prompt: str
    run_id: str
    trajectory: str
    outcome: str = ""
    answer: str = ""


@dataclass
class SessionRecord:
    """What `session/load` needs to resume a session."""

    id: str
    cwd: str
    mode: str = "code"
    turns: list[Turn] = field(default_factory=list)


def new_session_id() -> str:
    """A fresh session id (32 hex digits)."""
    return uuid.uuid4().hex


def session_file(state_dir: Path, session_id: str) -> Path:
    """Where the session is kept; UsageError for an id that is not one of ours."""
    if not SESSION_ID.fullmatch(session_id):
        raise UsageError(f"unknown session id {session_id[:80]!r}")
    return Path(state_dir) / "acp" / "sessions" / f"{session_id}.json"


def save(state_dir: Path, record: SessionRecord) -> None:
    """Write the record (atomically: a crash leaves the previous one)."""
    path = session_file(state_dir, record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def load(state_dir: Path, session_id: str) -> SessionRecord:
    """The saved session; UsageError when there is none or it is unreadable."""
    path = session_file(state_dir, session_id)
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        turns = [Turn(**t) for t in raw.get("turns", [])]
        return SessionRecord(raw["id"], raw["cwd"], raw.get("mode", "code"), turns)
    except FileNotFoundError:
        raise UsageError(f"no saved session {session_id}; start a new one") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"session {session_id} cannot be read ({exc}); start a new one") from None


def listing(
    state_dir: Path, cwd: str | None, limit: int = 100
) -> list[tuple[SessionRecord, float]]:
    """Saved sessions (of folder `cwd` when given), most recently updated first, with the time
    each was last saved; unreadable files are skipped."""
    folder = Path(state_dir) / "acp" / "sessions"
    found: list[tuple[SessionRecord, float]] = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            record, mtime = load(state_dir, path.stem), path.stat().st_mtime
        except (UsageError, OSError):
            continue
        if cwd is None or record.cwd == cwd:
            found.append((record, mtime))
    found.sort(key=lambda item: item[1], reverse=True)
    return found[:limit]


def replay(record: SessionRecord) -> Iterator[Any]:
    """The session's history as ACP updates: each prompt, then what its run streamed."""
    root = Path(record.cwd)
    for turn in record.turns:
        yield helpers.update_user_message_text(turn.prompt)
        mapper = UpdateMapper(root, goal=turn.prompt)
        for event in _events(Path(turn.trajectory)):
            yield from mapper.map(event)
        if turn.answer and not _streamed(Path(turn.trajectory)):
            yield helpers.update_agent_message_text(turn.answer)


def _events(path: Path) -> Iterator[Event]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line of a crashed run
        if isinstance(obj, dict) and obj.get("type") in EVENT_FIELDS:
            yield Event.from_dict(obj)


def _streamed(path: Path) -> bool:
    return any(e.type == "content" for e in _events(path))
