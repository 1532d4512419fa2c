"""The run's change set: what the editing tools recorded, cross-checked against git.

The tools record every file they change (`ToolContext.changes`: first old text, last new text
per path), so the run knows its change set without re-reading the tree. Git's view of the run
copy (`RunCopy.changes()`) is kept as a safety net, because other things write in the copy too:
a test or a command the model ran in the sandbox. When the two disagree the union wins, and
every disagreement becomes a note (a `status` event with phase `change_set`, so it is in the
trajectory too), so nothing is lost silently:

- a file git sees changed that no tool recorded (a command wrote it): delivered as git sees it;
- a file a tool changed whose final content differs from what the tool wrote (a command
  changed it afterwards): delivered as the copy holds it at the end;
- a file a tool changed that git does not see (an ignored path): delivered from the record
  when the copy still holds what the tool wrote (`FileChange.untracked`), noted otherwise.

For paths both agree on, git's entry is delivered: it also knows renames, modes and binary
content, which a text record does not.
"""

from __future__ import annotations

from collections.abc import Callable

from k2lsp.runs.changes import ChangeSet, FileChange


def final_state(changes: ChangeSet) -> dict[str, str | None]:
    """Path -> text at the end (None: absent) for every path a change set touches; binary
    files map to the marker `"<binary>"` unless deleted."""
    out: dict[str, str | None] = {}
    for fc in changes.files:
        if fc.old_path and fc.old_path != fc.path:
            out[fc.old_path] = None
        if fc.kind == "deleted":
            out[fc.path] = None
        else:
            out[fc.path] = "<binary>" if fc.binary else fc.new_text
    return out


def reconcile(
    recorded: ChangeSet,
    found: ChangeSet,
    read: Callable[[str], bytes | None],
) -> tuple[ChangeSet, list[str]]:
    """(the change set to deliver, notes on every disagreement). `recorded` is the tools'
    record, `found` git's view of the copy, `read(rel)` the copy's bytes of a path now."""
    tools = {fc.path: fc for fc in recorded.net().files}
    git = final_state(found)
    notes: list[str] = []
    outside = sorted(set(git) - set(tools))
    if outside:
        notes.append(
            f"changed in the run copy outside the editing tools (by a command or test): "
            f"{', '.join(outside)}; delivered as the copy holds them"
        )
    extra: list[FileChange] = []
    for rel, fc in sorted(tools.items()):
        if rel in git:
            if not fc.binary and git[rel] != fc.new_text:
                notes.append(
                    f"{rel} changed again after the tools wrote it (by a command or test); "
                    "delivered as the copy holds it at the end"
                )
            continue
        now = read(rel)
        wanted = None if fc.new_text is None else fc.new_text.encode("utf-8", "surrogatepass")
        if fc.binary or now != wanted:
            notes.append(
                f"{rel} was changed by the tools but the copy no longer holds that change "
                "(a command undid it?); not delivered"
            )
            continue
        notes.append(
            f"{rel} was changed by the tools but git does not track it (an ignored path); "
            "delivered from the tools' record"
        )
        extra.append(
            FileChange(rel, fc.old_text, fc.new_text, old_mode=None, new_mode=None, untracked=True)
        )
    merged = sorted([*found.files, *extra], key=lambda f: f.path)
    return ChangeSet(merged), notes
