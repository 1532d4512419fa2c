"""The one delivery planner: a run's changes against the user's current state, per file.

Pure data in, pure data out (the only work besides comparing bytes is `git merge-file` on
three in-memory texts). Both front-ends use it:

- the CLI (`k2lsp.runs.apply`) reads the user's files from disk, plans, and writes the plan
  to disk through `k2lsp.fs.safefs`;
- the language server (`k2lsp.server.edits`) reads the editor's open buffers (text and
  version, else the disk), plans, and maps the plan to one `WorkspaceEdit`.

    plan = plan_delivery([Incoming.of(fc) for fc in changes.files], current)
    for step in plan.steps: ...    # write / merge / create / delete / rename / unchanged / ...
    plan.conflicts                 # path -> why; a single conflict means nothing is delivered

The rules, the same for both:
- the user's file still holds the run's starting content (`base`), or already holds the
  run's result: the result is delivered as it is (`write`, `create`, `delete`, `unchanged`);
- the user changed it too: the two are merged three-way (`merge`); overlapping edits, or a
  create/delete on one side and an edit on the other, are a `conflict` (never an overwrite);
- a rename moves the (merged) content; the new path must be absent or already hold it;
- a path the front-end refuses to write (`Current.refused`: outside the folder, a symlink, a
  folder in the way, not UTF-8 text for an editor) is a `conflict` with that reason;
- `skip_binary`: binary changes are reported as `skip` (an editor cannot take them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from k2lsp.runs.changes import FileChange
from k2lsp.runs.merge import merge3_bytes

Action = Literal["write", "merge", "create", "delete", "rename", "unchanged", "conflict", "skip"]

# Why a file conflicts when the user's edits and the run's cannot be combined (the front-ends
# group these; a refused path carries the front-end's own reason instead).
SAME_LINES = "you edited the same lines"
CANNOT_COMBINE = "you changed it too, and the two versions cannot be combined"


@dataclass(frozen=True)
class Current:
    """What the user has at a path now. `data` None = absent; `version` is an open editor
    buffer's version (None: not open, or the disk); `refused` says why the front-end will
    not write the path ("" = it may)."""

    data: bytes | None
    version: int | None = None
    refused: str = ""


@dataclass(frozen=True)
class Incoming:
    """One file the run changed: its content at the run's start (`base`) and at its end
    (`theirs`), None = absent on that side."""

    path: str
    base: bytes | None
    theirs: bytes | None
    old_path: str | None = None  # renamed from
    binary: bool = False
    old_mode: str | None = None  # git modes ("100644", "100755", "120000")
    new_mode: str | None = None

    @classmethod
    def of(
        cls, fc: FileChange, *, base: bytes | None = None, theirs: bytes | None = None
    ) -> Incoming:
        """From a `FileChange`; `base`/`theirs` default to its texts (pass bytes for binary
        files, or when the start is read from the run's snapshot)."""
        kind = fc.kind
        if base is None and kind != "created" and fc.old_text is not None:
            base = fc.old_text.encode("utf-8", "surrogatepass")
        if theirs is None and kind != "deleted" and fc.new_text is not None:
            theirs = fc.new_text.encode("utf-8", "surrogatepass")
        return cls(
            path=fc.path,
            base=None if kind == "created" else base,
            theirs=None if kind == "deleted" else theirs,
            old_path=fc.old_path if fc.old_path and fc.old_path != fc.path else None,
            binary=fc.binary,
            old_mode=fc.old_mode,
            new_mode=fc.new_mode,
        )

    @property
    def source(self) -> str:
        """The path the run's change starts from (the old path of a rename)."""
        return self.old_path or self.path


@dataclass(frozen=True)
class Step:
    """What to do at one path. `before` is what the user has there now (what the step was
    planned against), `after` what it should hold (None = absent). A rename also removes
    `old_path`, which held `old_before`."""

    action: Action
    path: str
    before: bytes | None = None
    after: bytes | None = None
    version: int | None = None  # the open buffer's version `before` was read from
    mode: int | None = None  # file mode to set (None: keep the existing one)
    old_path: str | None = None
    old_before: bytes | None = None
    old_version: int | None = None
    reason: str = ""  # conflict: why
    clash: bool = False  # conflict: the user's edits and the run's could not be combined
    merged: bool = False  # `after` is a three-way merge of the user's edits and the run's


@dataclass
class DeliveryPlan:
    """Per-file steps, in the order of the changes."""

    steps: list[Step] = field(default_factory=list)

    @property
    def conflicts(self) -> dict[str, str]:
        """Conflicting paths and why (empty: the plan can be delivered)."""
        return {s.path: s.reason for s in self.steps if s.action == "conflict"}

    def by_action(self, *actions: Action) -> list[Step]:
        """The steps of the given actions."""
        return [s for s in self.steps if s.action in actions]


def git_mode(mode: str | None) -> int | None:
    """The stat mode of a git file mode (None when unknown or absent)."""
    return {"100755": 0o100755, "100644": 0o100644, "120000": 0o120777}.get(mode or "")


def plan_delivery(
    changes: Iterable[Incoming],
    current: Mapping[str, Current],
    *,
    skip_binary: bool = False,
) -> DeliveryPlan:
    """The plan for delivering `changes` onto `current` (the user's state per path; a path
    missing from it is taken as absent). See the module doc for the rules."""
    plan = DeliveryPlan()
    for inc in changes:
        plan.steps.append(_plan_one(inc, current, skip_binary))
    return plan


def _conflict(path: str, reason: str, *, clash: bool = False) -> Step:
    return Step("conflict", path, reason=reason, clash=clash)


def _plan_one(inc: Incoming, current: Mapping[str, Current], skip_binary: bool) -> Step:
    if inc.binary and skip_binary:
        return Step("skip", inc.path, reason="binary files are not delivered through an editor")
    ours = current.get(inc.source, Current(None))
    new = current.get(inc.path, Current(None)) if inc.old_path else ours
    refused = ours.refused or new.refused
    if refused:
        return _conflict(inc.path, refused)
    result, why = _combine(inc, ours.data)
    merged = ours.data not in (inc.base, inc.theirs)
    if why:
        return _conflict(inc.path, why, clash=True)
    fresh = ours.data is None or inc.old_mode != inc.new_mode
    mode = git_mode(inc.new_mode) if fresh else None
    if inc.old_path:
        if new.data is not None and new.data != result:
            return _conflict(
                inc.path,
                f"the run renamed {inc.old_path} to it, but your tree already has a different "
                f"{inc.path}",
                clash=True,
            )
        return Step(
            "rename",
            inc.path,
            before=new.data,
            after=result,
            version=new.version,
            mode=git_mode(inc.new_mode)
            if new.data is None or inc.old_mode != inc.new_mode
            else None,
            old_path=inc.old_path,
            old_before=ours.data,
            old_version=ours.version,
            merged=merged,
        )
    action: Action
    if result == ours.data and (mode is None or result is None):
        action = "unchanged"
    elif result is None:
        action = "delete"
    elif ours.data is None:
        action = "create"
    elif ours.data in (inc.base, result):  # untouched by the user (or a mode change only)
        action = "write"
    else:
        action = "merge"
    return Step(action, inc.path, ours.data, result, ours.version, mode, merged=merged)


def _combine(inc: Incoming, ours: bytes | None) -> tuple[bytes | None, str]:
    """(what the path should hold, "") or (None, why they cannot be combined)."""
    if ours == inc.base or ours == inc.theirs:
        return inc.theirs, ""
    if inc.base is None or ours is None or inc.theirs is None or inc.binary:
        return None, CANNOT_COMBINE
    merged, conflicted = merge3_bytes(inc.base, ours, inc.theirs)
    if conflicted:
        return None, SAME_LINES
    return merged, ""
