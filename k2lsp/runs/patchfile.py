"""A run's saved patch, one rule for both front-ends: what it holds, where it goes, how it is
written. The CLI saves one for `--output patch` (to `--patch-file`, or to the state dir under
`--json`), when `apply` meets a conflict and when a branch commit leaves ignored files out; the
language server saves one whenever an editor delivery is skipped, rejected, refused or in
conflict.

    text = make_patch(run_copy, changes)          # `git apply`-able: binary, renames, modes
    text = patch_text(run_copy, changes)          # the same, or the text diff if git cannot
    path = save_patch(text, state_dir, run_id)    # <state_dir>/patches/<run-id>.patch
    path = save_patch(text, state_dir, run_id, target=Path("fix.patch"))  # the user's file

In the state dir the patch is private (folder 0700, file 0600: it holds the project's code)
and replaced atomically, so a reader never sees half a patch. A file the user names is written
the way a shell redirect would (0666 minus the umask, through a link or device such as
/dev/stderr). The returned path is absolute; it is the path both front-ends report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.errors import K2lspError
from k2lsp.runs import gitcmd
from k2lsp.runs.changes import ChangeSet

if TYPE_CHECKING:
    from k2lsp.runs.runcopy import RunCopy

log = logging.getLogger(__name__)


def patches_dir(state_dir: Path | str) -> Path:
    """The folder saved patches go in (absolute)."""
    return Path(state_dir).absolute() / "patches"


def patch_path(state_dir: Path | str, run_id: str) -> Path:
    """Where the patch of run `run_id` is saved when the user names no file."""
    return patches_dir(state_dir) / f"{run_id}.patch"


def save_patch(
    text: str, state_dir: Path | str, run_id: str, target: Path | str | None = None
) -> Path:
    """Write `text` to `target` (the user's choice) or to `patch_path(...)`; its absolute path."""
    if target is not None:
        path = Path(target).expanduser().absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        return path
    path = patch_path(state_dir, run_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # a folder made before this rule keeps no wider mode
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)  # mkstemp: a new file, mode 0600, never an existing one or a link
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def make_patch(run_copy: RunCopy, changes: ChangeSet) -> str:
    """A `git apply`-able diff (binary-safe, renames, modes) of `changes` vs. the start."""
    tree = run_copy.delivery_tree()
    args = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--binary",
        "-M",
        "--src-prefix=a/",
        "--dst-prefix=b/",
    ]
    if run_copy.prefix:
        args.append(f"--relative={run_copy.prefix}/")
    specs = []
    for fc in changes.files:
        if fc.untracked:
            continue  # not in the tree: added below from the tools' record
        for rel in {fc.path, fc.old_path or fc.path}:
            specs.append(":(literal)" + (f"{run_copy.prefix}/{rel}" if run_copy.prefix else rel))
    text = ""
    if specs:
        proc = gitcmd.run(run_copy.git, *args, run_copy.base_commit, tree, "--", *specs)
        text = proc.stdout.decode("utf-8", "surrogateescape")
    return text + "".join(fc.diff() for fc in changes.files if fc.untracked)


def patch_text(run_copy: RunCopy | None, changes: ChangeSet) -> str:
    """`make_patch`, or the change set's own text diff when there is no run copy or git fails
    on it (a saved patch that lacks binary content beats no patch at all)."""
    if run_copy is None:
        return changes.diff()
    try:
        return make_patch(run_copy, changes)
    except (K2lspError, OSError) as exc:
        log.warning("git could not diff run %s (%s); saving the text diff", run_copy.run_id, exc)
        return changes.diff()
