"""Conversations: a run's history and run copy kept so a follow-up can continue them.

A conversation is named after its first run (`<id>` = that run's id) and made of:
- `<state_dir>/conversations/<id>.json` (mode 0600): the workspace, the turns (run id, task,
  outcome, delivery), and `messages`, the model history exactly as the next request sends it
  (assistant replies with their `reasoning_content` and tool calls, the tool results),
  redacted once more on the way to disk;
- the first run's run copy `<state_dir>/runs/<id>/`, *parked* between turns: its lock is
  released and `run.json` carries `"parked": <time>`, so `k2lsp gc` and a server start tell
  it apart from the leftovers of a crashed run.

Each turn works in the same run copy, so its changes carry over. When a turn is delivered into
the user's tree (`apply`, or merged by the editor), `advance` moves the copy's base to what
was delivered, so the next turn delivers only what is new on top of it; a turn that was not
delivered (a patch, a branch, a rejected preview) leaves the base alone, so the next delivery
carries the cumulative change.

Garbage collection (`k2lsp.runs.gc`) keeps the `keep` most recent conversations of each
workspace that are younger than `days`; older ones lose their run copy and their record
becomes a *tombstone* (`collected`: why), so continuing one says what happened instead of
"unknown". Tombstones go after `TOMBSTONE_DAYS`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.config.settings import default_state_dir
from k2lsp.errors import UsageError
from k2lsp.runs import gitcmd
from k2lsp.runs.runcopy import RunCopy, _lock

DEFAULT_KEEP = 5
DEFAULT_DAYS = 7.0
TOMBSTONE_DAYS = 30.0
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Conversation:
    """One conversation record (see the module doc)."""

    id: str
    repo: str  # the user's folder (resolved)
    run_dir: str  # the parked run copy
    mode: str = "task"
    turns: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    collected: str = ""  # non-empty: the run copy is gone, and why

    def tasks(self) -> list[str]:
        """The task text of every turn so far, in order."""
        return [str(t.get("task") or "") for t in self.turns]


def folder(state_dir: Path | str | None) -> Path:
    """Where conversation records live."""
    return default_state_dir(state_dir) / "conversations"


def _path(state_dir: Path | str | None, conv_id: str) -> Path:
    if not _ID.match(conv_id) or ".." in conv_id:
        raise UsageError(
            f"{conv_id!r} is not a conversation id (letters, digits, '.', '_' and '-'); "
            "use the `conversationId` a run returned"
        )
    return folder(state_dir) / f"{conv_id}.json"


def save(state_dir: Path | str | None, conv: Conversation) -> Path:
    """Write the record atomically, owner-only, redacted."""
    from k2lsp.redact.cache import redact_tree

    path = _path(state_dir, conv.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = redact_tree(asdict(conv))
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
    os.replace(tmp, path)
    return path


def read(state_dir: Path | str | None, conv_id: str) -> Conversation | None:
    """The record of `conv_id`, or None when there is none (or it is unreadable)."""
    path = _path(state_dir, conv_id)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {k: raw[k] for k in Conversation.__dataclass_fields__ if k in raw}
        return Conversation(**known)
    except (OSError, ValueError, TypeError):
        return None


def load(state_dir: Path | str | None, conv_id: str, repo: Path | None = None) -> Conversation:
    """The conversation to continue; UsageError saying why when it cannot be continued."""
    conv = read(state_dir, conv_id)
    if conv is None:
        raise UsageError(
            f"unknown conversation {conv_id!r} (no record in {folder(state_dir)}); start a "
            "new one without a conversation id"
        )
    if repo is not None and Path(conv.repo) != Path(repo).resolve():
        raise UsageError(
            f"conversation {conv_id!r} belongs to {conv.repo}, not {Path(repo).resolve()}; "
            "continue it from that folder or start a new one"
        )
    own = default_state_dir(state_dir) / "runs" / conv.id
    if Path(conv.run_dir) != own:  # a record is only ever about its own run folder
        raise UsageError(
            f"conversation {conv_id!r} has a damaged record (its run copy is not {own}); "
            "start a new conversation"
        )
    if conv.collected or not (Path(conv.run_dir) / "run.json").is_file():
        why = conv.collected or "its run copy is missing"
        raise UsageError(
            f"conversation {conv_id!r} can no longer be continued: {why}. Start a new "
            "conversation (its earlier changes, if delivered, are in your files)"
        )
    return conv


def latest(state_dir: Path | str | None, repo: Path) -> str | None:
    """The id of the most recently updated live conversation of workspace `repo`."""
    want = str(Path(repo).resolve())
    best: tuple[float, str] | None = None
    for conv in _all(state_dir):
        if conv.repo == want and not conv.collected:
            if best is None or conv.updated > best[0]:
                best = (conv.updated, conv.id)
    return best[1] if best else None


def _all(state_dir: Path | str | None) -> list[Conversation]:
    out = []
    for path in sorted(folder(state_dir).glob("*.json")):
        conv = read(state_dir, path.stem)
        if conv is not None:
            out.append(conv)
    return out


# ---- the parked run copy ------------------------------------------------------------------
def _update_meta(run_dir: Path, **changes: Any) -> None:
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update(changes)
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, meta_path)


def is_parked(run_dir: Path) -> bool:
    """Does the run folder hold a conversation's parked run copy?"""
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(meta.get("parked"))


def park(copy: RunCopy) -> None:
    """Keep the run copy for the next turn and release its lock."""
    _update_meta(Path(copy.run_dir), parked=time.time())
    handle, copy._lock_handle = copy._lock_handle, None
    if handle is not None:
        handle.close()


def resume(conv: Conversation) -> RunCopy:
    """The conversation's run copy, locked for this process (UsageError when busy)."""
    run_dir = Path(conv.run_dir)
    try:
        copy = RunCopy.load(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(
            f"conversation {conv.id!r} can no longer be continued: its run copy at {run_dir} "
            f"is unreadable ({exc}); start a new conversation"
        ) from None
    handle = _lock(run_dir / "run.lock")
    if handle is None:
        raise UsageError(
            f"conversation {conv.id!r} is busy: another run is continuing it right now; wait "
            "for it to finish (or cancel it) and send the follow-up again"
        )
    copy._lock_handle = handle
    return copy


def advance(copy: RunCopy) -> None:
    """Make what was just delivered into the user's tree the copy's new base."""
    tree = copy.delivery_tree()
    set_base(copy, gitcmd.commit_tree(copy.git, tree, [copy.base_commit], "k2lsp: delivered\n"))


def set_base(copy: RunCopy, commit: str) -> None:
    """Move the copy's base to `commit` (its branch's start stays for clean-up)."""
    start = copy.start_commit or copy.base_commit
    copy.start_commit, copy.base_commit = start, commit
    copy.last_tree = None
    _update_meta(Path(copy.run_dir), base_commit=commit, start_commit=start)


def tombstone(state_dir: Path | str | None, conv_id: str, why: str) -> None:
    """Drop a conversation's history, keeping a note of why it cannot be continued."""
    conv = read(state_dir, conv_id)
    if conv is None or conv.collected:
        return
    conv.messages, conv.collected, conv.updated = [], why, time.time()
    save(state_dir, conv)


def keepers(
    state_dir: Path | str | None, keep: int = DEFAULT_KEEP, days: float = DEFAULT_DAYS
) -> set[str]:
    """Ids of the conversations whose parked run copies gc keeps: the `keep` most recent of
    each workspace, updated within `days`."""
    cutoff = time.time() - days * 86400
    by_repo: dict[str, list[Conversation]] = {}
    for conv in _all(state_dir):
        if not conv.collected and conv.updated >= cutoff:
            by_repo.setdefault(conv.repo, []).append(conv)
    kept: set[str] = set()
    for convs in by_repo.values():
        convs.sort(key=lambda c: c.updated, reverse=True)
        kept.update(c.id for c in convs[: max(0, keep)])
    return kept


def prune_records(state_dir: Path | str | None) -> list[str]:
    """Tombstone records whose run copy is gone; delete tombstones older than TOMBSTONE_DAYS."""
    done = []
    cutoff = time.time() - TOMBSTONE_DAYS * 86400
    for conv in _all(state_dir):
        if conv.collected:
            if conv.updated < cutoff:
                _path(state_dir, conv.id).unlink(missing_ok=True)
                done.append(f"forgot conversation {conv.id}")
        elif not (Path(conv.run_dir) / "run.json").is_file():
            tombstone(state_dir, conv.id, "its run copy was removed")
            done.append(f"conversation {conv.id}: run copy gone")
    return done
