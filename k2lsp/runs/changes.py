"""A run's change set as data: per file the old text, the new text and a unified diff.

Produced by the run copy (`k2lsp.runs.runcopy`), planned by `k2lsp.runs.plan`, delivered by
`k2lsp.runs.git` (apply/branch/patch) or by the language server as a `WorkspaceEdit`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass
class FileChange:
    """One file's change. `old_text` None = created; `new_text` None = deleted."""

    path: str  # workspace-relative posix path (the new path for renames)
    old_text: str | None
    new_text: str | None
    old_path: str | None = None  # set for renames
    binary: bool = False  # binary files carry no text; delivery copies bytes
    # git file modes ("100644", "100755", "120000" symlink); None = absent on that side / unknown
    old_mode: str | None = None
    new_mode: str | None = None
    untracked: bool = False  # git does not track it (ignored): known from the tools' record

    @property
    def kind(self) -> str:
        """created | deleted | renamed | modified."""
        if self.binary and (self.old_mode or self.new_mode) and self.old_path is None:
            if self.old_mode is None:
                return "created"
            if self.new_mode is None:
                return "deleted"
        if self.old_text is None and not self.binary and self.old_path is None:
            return "created"
        if self.new_text is None and not self.binary:
            return "deleted"
        if self.old_path and self.old_path != self.path:
            return "renamed"
        return "modified"

    def diff(self) -> str:
        """Unified diff of this file (a/ b/ prefixes, like git)."""
        if self.binary:
            return f"Binary file {self.path} changed\n"
        return unified_diff(self.old_path or self.path, self.path, self.old_text, self.new_text)


@dataclass
class ChangeSet:
    """All files a run changed, sorted by path."""

    files: list[FileChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files)

    def paths(self) -> list[str]:
        """Changed paths."""
        return [f.path for f in self.files]

    def diff(self) -> str:
        """One unified diff for every file."""
        return "".join(f.diff() for f in self.files)

    def record(
        self, path: str, old_text: str | None, new_text: str | None, *, binary: bool = False
    ) -> None:
        """Note that a tool changed `path` from `old_text` to `new_text` (None = absent).
        The first old text of a path is kept, the last new one wins (a recorded run)."""
        for fc in self.files:
            if fc.path == path:
                fc.new_text, fc.binary = new_text, fc.binary or binary
                return
        self.files.append(FileChange(path, old_text, new_text, binary=binary))
        self.files.sort(key=lambda f: f.path)

    def net(self) -> ChangeSet:
        """The recorded files whose content differs from their first old text."""
        return ChangeSet([f for f in self.files if f.binary or f.old_text != f.new_text])


def unified_diff(old_path: str, new_path: str, old: str | None, new: str | None) -> str:
    """A git-style unified diff between two texts (None = file absent)."""
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(
        a,
        b,
        fromfile="/dev/null" if old is None else f"a/{old_path}",
        tofile="/dev/null" if new is None else f"b/{new_path}",
    ):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def inverse(plan_before: dict[str, str | None], plan_after: dict[str, str | None]) -> ChangeSet:
    """The change set that undoes a delivery (after -> before), for `k2lsp.undo`."""
    files = [
        FileChange(path=p, old_text=plan_after.get(p), new_text=plan_before.get(p))
        for p in sorted(set(plan_before) | set(plan_after))
        if plan_after.get(p) != plan_before.get(p)
    ]
    return ChangeSet(files)
