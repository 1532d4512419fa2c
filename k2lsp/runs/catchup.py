"""A follow-up starts from your latest edits: before a conversation's next turn, what you changed
since its base (saved files and unsaved buffers) is brought into the parked run copy, for every
file the conversation itself has not changed.

    taken = catch_up(copy, overlay)   # paths brought in; the copy's base moves with them

For such a file the copy and the base both become your current text, so the model reads what
you have now and the file is not part of any delivery unless the model edits it again. A file
both you and the conversation changed is left as the conversation has it: its delivery merges
three-way with your text, or reports a conflict, as for any run. Links and submodules are left
alone. Nothing here runs while a sandbox does (the previous turn's sandbox is closed), and
every write goes through `k2lsp.fs.safefs` (no link is followed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from k2lsp.fs import safefs
from k2lsp.runs import gitcmd, snapshot

if TYPE_CHECKING:
    from k2lsp.runs.runcopy import RunCopy

_SKIP_MODES = ("120000", "160000")


def _user_state(copy: RunCopy, overlay: dict[str, str]) -> str | None:
    """A commit of the user's folder now (unsaved buffers on top); None if it is gone."""
    if copy.is_git:
        top = gitcmd.toplevel(copy.source)
        if top is None:
            return None
        return snapshot.snapshot_git(top, copy.source, overlay, copy.run_dir)
    if not copy.source.is_dir():
        return None
    return snapshot.snapshot_nongit(copy.source, copy.git_dir, overlay)


def catch_up(copy: RunCopy, overlay: dict[str, str] | None = None) -> list[str]:
    """Bring the user's changes since the copy's base into the copy (see the module doc)."""
    user = _user_state(copy, dict(overlay or {}))
    if user is None:
        return []
    args = ["diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", "--no-ext-diff"]
    if copy.prefix:
        args.append(f"--relative={copy.prefix}/")
    raw = gitcmd.run(copy.git, *args, copy.base_commit, user).stdout
    taken: list[tuple[str, str]] = []  # (rel, new mode)
    for entry in snapshot.parse_raw(raw):
        rel = entry.new_path
        if entry.old_mode in _SKIP_MODES or entry.new_mode in _SKIP_MODES:
            continue
        if safefs.read_entry(copy.root, rel) != copy.base_bytes(rel):
            continue  # the conversation changed it: delivery merges
        if entry.new_mode == snapshot.ABSENT:
            safefs.unlink(copy.root, rel)
        else:
            spec = f"{user}:{copy._repo_path(rel)}"
            data = gitcmd.cat_file(copy.git, spec, filters=True) or b""
            safefs.write_bytes(copy.root, rel, data, 0o755 if entry.new_mode == "100755" else 0o644)
        taken.append((rel, entry.new_mode))
    if taken:
        _move_base(copy, user, taken)
    return [rel for rel, _ in taken]


def _move_base(copy: RunCopy, user: str, taken: list[tuple[str, str]]) -> None:
    """The copy's new base: the old one with the taken files as the user has them."""
    from k2lsp.runs.conversations import set_base

    with gitcmd.temp_index(None, Path(copy.run_dir)) as env:
        gitcmd.run(copy.git, "read-tree", copy.base_commit, env=env)
        for rel, mode in taken:
            path = copy._repo_path(rel)
            if mode == snapshot.ABSENT:
                gitcmd.run(copy.git, "update-index", "--force-remove", "--", path, env=env)
                continue
            sha = gitcmd.rev(copy.git, f"{user}:{path}")
            info = f"{mode},{sha},{path}"
            gitcmd.run(copy.git, "update-index", "--add", "--cacheinfo", info, env=env)
        tree = gitcmd.out(copy.git, "write-tree", env=env)
    message = f"k2lsp: your edits since the last turn ({len(taken)} file(s))\n"
    commit = gitcmd.commit_tree(copy.git, tree, [copy.base_commit], message)
    set_base(copy, commit)


def describe(paths: list[str], limit: int = 10) -> str:
    """One line for the status event and the model: which files were brought in."""
    shown = ", ".join(paths[:limit]) + (
        f" and {len(paths) - limit} more" if len(paths) > limit else ""
    )
    return f"brought your edits since the last turn into the conversation's copy: {shown}"
