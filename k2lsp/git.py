"""Checkpoints, delivery (apply / branch / patch), undo and three-way merge (GitPython).

STUB: the run-copies issue implements this. Contract:

    delivery = deliver(run_copy, changes, "apply" | "branch" | "patch", task="...")
    cp = record_checkpoint(source, paths, label)   # before anything writes to the user's tree
    undo(source, checkpoint=None)                  # restore bytes; EditConflict if changed since
    merged, conflicted = merge3(base, ours, theirs)
"""

from __future__ import annotations
