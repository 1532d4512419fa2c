"""The run copy: a git worktree on branch `k2lsp/<run-id>` holding the user's current state
(HEAD + staged + unstaged + untracked non-ignored files + unsaved buffers), or a temporary
copy for folders that are not git repositories.

STUB: the run-copies issue implements this. Contract:

    rc = RunCopy.create(source=Path(repo), run_id="20261122-abcd", overlay={"a.py": "..."})
    rc.root          # Path of the copy the tools work in
    rc.changes()     # ChangeSet: the copy now vs. its starting snapshot
    rc.cleanup()     # remove the copy (after delivery, unless kept)
"""

from __future__ import annotations
