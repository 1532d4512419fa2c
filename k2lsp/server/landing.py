"""Making sure a delivery lands on the text the user has now, and nowhere else.

An editor may hold changes the server has not seen yet (Neovim batches `didChange` for 150 ms
by default; a keystroke can land between the server's plan and the editor applying it). So:

- before planning, `settle` waits briefly for a quiet moment after the last `didChange`;
- after the undo checkpoint is written, `moved` tells whether a planned buffer changed
  meanwhile (then the plan is dropped and made again on the new text);
- after `workspace/applyEdit`, `verify` waits for the editor's own `didChange` and checks that
  every edited buffer really held the change at some point (typing right after it is the
  user's): clients that skip a stale versioned edit yet answer `applied: true` (stock Neovim
  does) are caught here, and the delivery is planned again (three-way merge over the user's
  new text) or reported as a conflict.

Nothing here writes: `k2lsp.server.delivery` decides what to do with the answers.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.errors import PathError
from k2lsp.runs.merge import holds
from k2lsp.server.edits import Plan, current_state

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

ATTEMPTS = 4  # plans tried before the delivery is reported as a conflict
QUIET_S = 0.1  # no didChange for this long: the server's view is taken as current
SETTLE_LIMIT_S = 1.0  # never wait longer than this for a quiet moment
ECHO_TIMEOUT_S = 2.0  # how long the editor may take to echo an applied edit as didChange


def _last_change(ls: LanguageServer) -> float:
    return float(getattr(ls, "last_change", 0.0))  # set by the didOpen/didChange handlers


async def settle(ls: LanguageServer, quiet: float = QUIET_S, limit: float = SETTLE_LIMIT_S) -> None:
    """Wait until no document changed for `quiet` seconds (at most `limit` seconds)."""
    deadline = time.monotonic() + limit
    while True:
        now = time.monotonic()
        left = quiet - (now - _last_change(ls))
        if left <= 0 or now >= deadline:
            return
        await asyncio.sleep(min(left, deadline - now))


def _version_now(ls: LanguageServer, uri: str) -> tuple[bool, int | None]:
    """(open, version) of `uri` in the server's document store."""
    doc = ls.workspace.text_documents.get(uri)
    return (doc is not None, doc.version if doc is not None else None)


def moved(ls: LanguageServer, plan: Plan) -> list[str]:
    """Paths whose open buffer changed (or was opened or closed) since `plan` was made."""
    out = []
    for rel, seen in plan.seen.items():
        is_open, version = _version_now(ls, seen.uri)
        if is_open != (seen.version is not None) or version != seen.version:
            out.append(rel)
    return out


async def moved_soon(ls: LanguageServer, plan: Plan, timeout: float = 0.5) -> bool:
    """After a refused edit: did a planned buffer change (its didChange may trail the answer)?"""
    deadline = time.monotonic() + timeout
    while not moved(ls, plan):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def edited(plan: Plan) -> dict[str, str]:
    """Edited paths that were open buffers when planned (rel -> uri): the ones to check."""
    return {
        rel: seen.uri
        for rel, seen in plan.seen.items()
        if seen.version is not None and plan.before.get(rel) != plan.after.get(rel)
    }


def watch(ls: LanguageServer, plan: Plan) -> None:
    """Start recording every text the planned buffers go through (before the edit is sent)."""
    watched: dict[str, list[str]] = getattr(ls, "watched", {})
    for uri in edited(plan).values():
        watched[uri] = []


def unwatch(ls: LanguageServer, plan: Plan) -> None:
    """Stop recording (after `verify`)."""
    watched: dict[str, list[str]] = getattr(ls, "watched", {})
    for uri in edited(plan).values():
        watched.pop(uri, None)


async def verify(ls: LanguageServer, root: Path, plan: Plan) -> list[str]:
    """After an applied edit: the planned buffers that never held their change (empty: all did).

    Every text a buffer went through since `watch` counts: the user may type right after the
    edit landed, and that typing is theirs, not a sign the edit is missing.
    """
    tracked = edited(plan)
    if not tracked:
        return []
    watched: dict[str, list[str]] = getattr(ls, "watched", {})
    deadline = time.monotonic() + ECHO_TIMEOUT_S
    while time.monotonic() < deadline and not set(tracked) <= set(moved(ls, plan)):
        await asyncio.sleep(0.01)  # every edited buffer echoes the edit as a didChange
    await settle(ls)
    missing = []
    for rel, uri in tracked.items():
        try:
            texts: list[str | None] = [*watched.get(uri, []), current_state(ls, root, rel).text]
        except PathError:
            missing.append(rel)
            continue
        before, after = plan.before.get(rel), plan.after.get(rel)
        if not await asyncio.to_thread(_held, before, texts, after):
            missing.append(rel)
    return missing


def _held(before: str | None, texts: list[str | None], after: str | None) -> bool:
    return any(holds(before, text, after) for text in texts)
