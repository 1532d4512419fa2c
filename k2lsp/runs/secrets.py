"""Refusing to deliver a change set whose added lines hold a key in use or a credential."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from k2lsp.redact import PATTERNS, known_secrets, redact
from k2lsp.runs.changes import ChangeSet

TRAILER = "Generated-by: k2lsp"

if TYPE_CHECKING:
    from k2lsp.runs.runcopy import RunCopy


# ---- secrets --------------------------------------------------------------------------------
def find_secrets(changes: ChangeSet, run_copy: RunCopy | None = None) -> list[str]:
    """`path:line` (or `path`) of every added line holding a known secret or credential pattern.

    Text files are scanned line by line (only lines the run added); binary files for the
    configured key values.
    """
    known = [k for k in known_secrets() if k]
    found: list[str] = []
    for fc in changes.files:
        if fc.new_text is not None:
            for number, line in _added_lines(fc.old_text or "", fc.new_text):
                if any(k in line for k in known) or any(p.search(line) for p in PATTERNS):
                    found.append(f"{fc.path}:{number}")
        elif fc.binary and run_copy is not None and known:
            data = run_copy.read_bytes(fc.path) or b""
            if any(k.encode("utf-8") in data for k in known):
                found.append(fc.path)
    return found


def _added_lines(old: str, new: str) -> list[tuple[int, str]]:
    a, b = old.splitlines(), new.splitlines()
    out: list[tuple[int, str]] = []
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            out.extend((j + 1, b[j]) for j in range(j1, j2))
    return out


SUBJECT_MAX = 60  # characters of the task in a commit subject


BODY_MAX = 2_000  # characters of the task in a commit body


def commit_message(task: str, run_id: str) -> str:
    """The message of a delivered commit: the task redacted, bounded and printable."""
    text = redact(task).replace("\r\n", "\n")
    text = "".join(c if c.isprintable() or c in "\n\t" else " " for c in text).strip()
    first = " ".join(text.split())
    subject = first[:SUBJECT_MAX].rstrip() + ("…" if len(first) > SUBJECT_MAX else "")
    body = text if len(text) <= BODY_MAX else text[:BODY_MAX].rstrip() + "\n[... task cut ...]"
    return f"k2lsp: {subject or 'changes'}\n\nTask: {body}\n\nK2lsp-Run: {run_id}\n{TRAILER}\n"
