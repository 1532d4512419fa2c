"""A proposed change split into hunks that can be accepted or rejected one by one.

A `FileReview` holds the text the editor had when the review started (`base`) and the hunks
that turn it into the proposal. Hunks never overlap, so any subset of them applies to `base`
on its own: `text_with` gives the text after the accepted ones, and the hunks still pending are
always expressed against that text (for the saved patch, `k2lsp.server.review`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from k2lsp.runs.changes import unified_diff
from k2lsp.server.edits import split_lines

PENDING, ACCEPTED, REJECTED, CONFLICT = "pending", "accepted", "rejected", "conflict"


@dataclass
class Hunk:
    """Lines `start:start+len(old)` of the base become `new` (lines keep their endings)."""

    id: int
    start: int
    old: list[str]
    new: list[str]
    state: str = PENDING
    reason: str = ""  # why it is a conflict

    def payload(self) -> dict[str, Any]:
        """The `k2lsp/review` form (lines without their endings)."""
        return {
            "id": self.id,
            "start": self.start,
            "oldLines": [_bare(x) for x in self.old],
            "newLines": [_bare(x) for x in self.new],
            "state": self.state,
        }


@dataclass(eq=False)
class FileReview:
    """One file of a review: created / deleted / renamed files are a single whole-file hunk."""

    path: str
    uri: str
    kind: str  # modified | created | deleted | renamed
    base: str | None  # the editor's text when the review started (None: absent)
    target: str | None  # the proposal (None: deleted)
    version: int | None = None  # the buffer version `base` was read at (None: not open)
    old_path: str | None = None  # renamed from
    hunks: list[Hunk] = field(default_factory=list)
    group: str = ""  # a label shown over the file (a refactor job's batch), "" for none

    def text_with(self, states: tuple[str, ...]) -> str | None:
        """The base with the hunks in `states` applied (whole-file hunks: base or target)."""
        if self.kind != "modified":
            return self.target if self.hunks and self.hunks[0].state in states else self.base
        lines = split_lines(self.base or "")
        for h in sorted(self.hunks, key=lambda h: h.start, reverse=True):
            if h.state in states:
                lines[h.start : h.start + len(h.old)] = h.new
        return "".join(lines)

    def payload(self) -> dict[str, Any]:
        """The `k2lsp/review` form of this file."""
        return {
            "path": self.path,
            "uri": self.uri,
            "kind": self.kind,
            "version": self.version,
            "hunks": [h.payload() for h in self.hunks],
            **({"group": self.group} if self.group else {}),
        }


def split(base: str, target: str, first_id: int) -> list[Hunk]:
    """The hunks turning `base` into `target`, numbered from `first_id`.

    Changes one unchanged line apart stay separate hunks; each is accepted on its own.
    """
    a, b = split_lines(base), split_lines(target)
    out: list[Hunk] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            out.append(Hunk(first_id + len(out), i1, a[i1:i2], b[j1:j2]))
    return out


def patch_of(files: list[FileReview], states: tuple[str, ...]) -> str:
    """A unified diff of the hunks in `states`, against the text after the accepted hunks."""
    parts = []
    for f in files:
        if not any(h.state in states for h in f.hunks):
            continue
        now = f.text_with((ACCEPTED,))
        later = f.text_with((ACCEPTED, *states))
        if f.kind == "renamed" and f.old_path:
            parts.append(unified_diff(f.old_path, f.old_path, f.base, None))
            parts.append(unified_diff(f.path, f.path, None, f.target))
            continue
        parts.append(unified_diff(f.path, f.path, now, later))
    return "".join(parts)


def _bare(line: str) -> str:
    return line.rstrip("\r\n")
