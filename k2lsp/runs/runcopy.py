"""The run copy: a private copy of the user's current state (HEAD + staged + unstaged +
untracked non-ignored files + unsaved buffers) that the model and its tests work in.

Where things live (decided here, see docs): every run gets `<state_dir>/runs/<run-id>/` with
`run.json` (metadata), `run.lock` (held with flock while the run's process lives; `k2lsp gc`
removes runs whose lock is free), `git/` (a git dir k2lsp owns: it borrows the user's objects
through `objects/info/alternates` and is never visible to the sandbox as `.git`) and
`copy/<name>/`, the work tree, named after the source folder. The copy holds no `.git`: every
host-side git call on it goes through `gitcmd` with `--git-dir=<run-dir>/git` (see
docs/security.md). A git source also gets the branch `k2lsp/<run-id>` in its own repository,
pointing at the starting snapshot (branch delivery moves it).
`state_dir` defaults to `$K2LSP_STATE_DIR`, else `$XDG_STATE_HOME/k2lsp`, else
`~/.local/state/k2lsp`.

The starting snapshot is a commit built with a temporary index (the user's index, stash list,
HEAD and branches are never touched): `git add -A` of the user's work tree into the private
index, the unsaved buffers hashed on top, `write-tree`, `commit-tree -p HEAD` (no parent in a
repository without commits). When nothing is uncommitted the snapshot is HEAD itself. A folder
that is not a git repository gets the same treatment with a private repository
`<run-dir>/snapshot.git` (honouring a `.gitignore` if present, skipping virtualenvs and
`node_modules`); its run copy has no branch and can be delivered by `apply` or `patch`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from k2lsp.config.settings import default_state_dir
from k2lsp.errors import PathError, UsageError
from k2lsp.fs import safefs
from k2lsp.runs import gitcmd, snapshot
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.runs.workspace import Workspace, decode_text

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BRANCH_PREFIX = "k2lsp/"
LAYOUT = 2  # run.json `layout`: 2 = own git dir + copy/; absent = a git worktree (older k2lsp)


def new_run_id() -> str:
    """A fresh, sortable run id (`YYYYmmdd-HHMMSS-xxxxxx`)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _lock(path: Path) -> IO[str] | None:
    """Open and exclusively flock `path`; None when another live process holds it."""
    handle = open(path, "a+", encoding="utf-8")
    try:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no flock (Windows): treat the pid in run.json as the liveness signal
        return handle
    except OSError:
        handle.close()
        return None
    return handle


@dataclass
class RunCopy:
    """One run's private copy of the user's folder."""

    root: Path  # where tools work (the copy of `source`)
    source: Path  # the user's folder
    run_id: str
    is_git: bool
    branch: str | None
    base_commit: str  # the starting snapshot
    run_dir: Path
    worktree: Path  # top of the git work tree of the copy (== root unless source is a subfolder)
    git_dir: Path  # the git dir k2lsp owns for the copy (`<run-dir>/git`)
    prefix: str = ""  # source relative to its repository top level ("" at the top)
    layout: int = LAYOUT
    _lock_handle: IO[str] | None = None
    last_tree: str | None = None  # the tree the last `changes()` was computed from
    # What the user's `k2lsp/<id>` branch was created at (cleanup's compare-and-delete); a
    # conversation moves `base_commit` past it once a turn is delivered into the tree.
    start_commit: str = ""

    @property
    def git(self) -> gitcmd.OwnGit:
        """The hardened git runner of the copy (explicit git dir and work tree)."""
        return gitcmd.OwnGit(self.git_dir, self.worktree)

    @property
    def state_dir(self) -> Path:
        """The k2lsp state folder this run lives in."""
        return self.run_dir.parent.parent

    # ---- creation -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        source: Path | str,
        run_id: str,
        overlay: dict[str, str] | None = None,
        state_dir: Path | str | None = None,
    ) -> RunCopy:
        """Snapshot `source` (plus unsaved `overlay` buffers) into a fresh run copy."""
        src = Path(source).expanduser().resolve()
        if not src.is_dir():
            raise UsageError(f"{source} is not a folder; pass --repo with an existing directory")
        if not _RUN_ID.match(run_id) or run_id.endswith(".lock") or ".." in run_id:
            raise UsageError(
                f"run id {run_id!r} is not usable as a branch name; use letters, "
                "digits, '.', '_' and '-'"
            )
        if not gitcmd.git_available():
            raise UsageError("git is not installed or not on PATH; k2lsp needs it for run copies")
        run_dir = default_state_dir(state_dir) / "runs" / run_id
        if run_dir.exists():
            raise UsageError(f"run {run_id} already exists at {run_dir}; pick another run id")
        run_dir.mkdir(parents=True)
        lock = _lock(run_dir / "run.lock")
        try:
            copy = _create(src, run_id, dict(overlay or {}), run_dir)
        except BaseException:
            if lock:
                lock.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        copy._lock_handle = lock
        copy._save_meta()
        return copy

    @classmethod
    def load(cls, run_dir: Path) -> RunCopy:
        """The run copy described by `<run_dir>/run.json` (no lock is taken)."""
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return cls(
            root=Path(meta["root"]),
            source=Path(meta["source"]),
            run_id=meta["run_id"],
            is_git=meta["is_git"],
            branch=meta["branch"],
            base_commit=meta["base_commit"],
            run_dir=run_dir,
            worktree=Path(meta["worktree"]),
            git_dir=Path(meta["git_dir"]),
            prefix=meta.get("prefix", ""),
            layout=int(meta.get("layout", 1)),
            start_commit=meta.get("start_commit", ""),
        )

    def _save_meta(self) -> None:
        meta = {
            "run_id": self.run_id,
            "source": str(self.source),
            "root": str(self.root),
            "is_git": self.is_git,
            "branch": self.branch,
            "base_commit": self.base_commit,
            "worktree": str(self.worktree),
            "git_dir": str(self.git_dir),
            "prefix": self.prefix,
            "layout": self.layout,
            "start_commit": self.start_commit or self.base_commit,
            "pid": os.getpid(),
            "created": time.time(),
        }
        tmp = self.run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp, self.run_dir / "run.json")

    # ---- the change set -------------------------------------------------------------------
    def snapshot_now(self) -> str:
        """A tree of the copy's current state minus run litter (caches, bytecode); the copy's
        own index and files are not modified."""
        with gitcmd.temp_index(self.git_dir / "index", self.run_dir) as env:
            return gitcmd.snapshot_tree(self.git, env, exclude=snapshot.RUN_LITTER)

    def changes(self) -> ChangeSet:
        """The copy now vs. its starting snapshot, per file with old and new text.

        The new contents are read from the snapshot tree, not the disk, so what is delivered
        is exactly what was diffed, even if a process left in the sandbox changes files later.
        """
        tree = self.snapshot_now()
        self.last_tree = tree
        args = ["diff-tree", "-r", "-z", "-M", "--no-commit-id", "--no-ext-diff"]
        if self.prefix:
            args.append(f"--relative={self.prefix}/")
        raw = gitcmd.run(self.git, *args, self.base_commit, tree).stdout
        files = [self._file_change(entry) for entry in snapshot.parse_raw(raw)]
        return ChangeSet(sorted((f for f in files if f is not None), key=lambda f: f.path))

    def delivery_tree(self) -> str:
        """The tree to deliver: the one the last `changes()` saw, else a fresh snapshot."""
        return self.last_tree or self.snapshot_now()

    def _file_change(self, entry: snapshot.RawEntry) -> FileChange | None:
        if "160000" in (entry.old_mode, entry.new_mode):
            return None  # submodules are not part of a run's change set
        old_path, new_path = entry.old_path, entry.new_path
        old_bytes = None if entry.old_mode == snapshot.ABSENT else self._old_bytes(old_path)
        new_bytes = None if entry.new_mode == snapshot.ABSENT else self.read_bytes(new_path)
        binary = (
            "120000" in (entry.old_mode, entry.new_mode)
            or _is_binary(old_bytes)
            or _is_binary(new_bytes)
        )
        return FileChange(
            path=new_path,
            old_text=None if binary or old_bytes is None else old_bytes.decode("utf-8"),
            new_text=None if binary or new_bytes is None else new_bytes.decode("utf-8"),
            old_path=old_path if old_path != new_path else None,
            binary=binary,
            old_mode=None if entry.old_mode == snapshot.ABSENT else entry.old_mode,
            new_mode=None if entry.new_mode == snapshot.ABSENT else entry.new_mode,
        )

    def _repo_path(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _old_bytes(self, rel: str) -> bytes | None:
        """Bytes of `rel` in the starting snapshot, as they were on disk (checkout filters on)."""
        return gitcmd.cat_file(self.git, f"{self.base_commit}:{self._repo_path(rel)}", filters=True)

    def base_bytes(self, rel: str) -> bytes | None:
        """Public form of `_old_bytes` for delivery (None = absent at the start)."""
        return self._old_bytes(rel)

    def read_bytes(self, rel: str) -> bytes | None:
        """Bytes of `rel` in the copy (a symlink's target for links), None if absent: from the
        tree of the last `changes()` when there is one, else from disk without following any
        link the sandbox could have planted."""
        if self.last_tree is not None:
            return gitcmd.cat_file(
                self.git, f"{self.last_tree}:{self._repo_path(rel)}", filters=True
            )
        return safefs.read_entry(self.root, rel)

    # ---- cleanup --------------------------------------------------------------------------
    def cleanup(self, keep_branch: bool = False) -> None:
        """Remove the copy; its branch goes too unless kept or it carries a delivered commit."""
        if self.is_git and self.layout < LAYOUT:
            self._forget_worktree()  # a run made by an older k2lsp (a git worktree)
        shutil.rmtree(self.worktree, ignore_errors=True)
        if self.is_git:
            if self.branch and not keep_branch:
                # Compare-and-delete: a branch that moved (a delivered commit) survives.
                gitcmd.run(
                    self.source,
                    "update-ref",
                    "-d",
                    f"refs/heads/{self.branch}",
                    self.start_commit or self.base_commit,
                    check=False,
                )
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _forget_worktree(self) -> None:
        """Drop our worktree's entry from the user's repository, and only ours: never a global
        `git worktree prune`, which would also drop the user's own worktrees that look stale
        (a moved folder, an unmounted drive) with their index and HEAD."""
        proc = gitcmd.run(
            self.source, "worktree", "remove", "--force", str(self.worktree), check=False
        )
        if proc.returncode == 0:
            return
        ours = {os.path.realpath(self.worktree / ".git"), os.path.abspath(self.worktree / ".git")}
        for gitdir_file in (self.git_dir / "worktrees").glob("*/gitdir"):
            try:
                recorded = gitdir_file.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            path = os.path.join(gitdir_file.parent, recorded)  # absolute, or relative to it
            if {os.path.realpath(path), os.path.abspath(path)} & ours:
                shutil.rmtree(gitdir_file.parent, ignore_errors=True)

    def workspace(self, **kw: Any) -> Workspace:
        """A Workspace confined to the copy."""
        return Workspace(self.root, **kw)


def _create(src: Path, run_id: str, overlay: dict[str, str], run_dir: Path) -> RunCopy:
    top = gitcmd.toplevel(src)
    is_git = top is not None
    git_dir = run_dir / "git"
    gitcmd.run(run_dir, "init", "-q", "--bare", "--template=", str(git_dir))
    if top is None:
        exclude = git_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join(snapshot.NON_GIT_EXCLUDES) + "\n", encoding="utf-8")
        top, prefix = src, ""
        base = snapshot.snapshot_nongit(src, git_dir, overlay)
    else:
        objects = gitcmd.common_dir(src) / "objects"
        alternates = git_dir / "objects" / "info" / "alternates"
        alternates.parent.mkdir(parents=True, exist_ok=True)
        alternates.write_text(str(objects.resolve()) + "\n", encoding="utf-8")
        prefix = src.relative_to(top).as_posix() if src != top else ""
        base = snapshot.snapshot_git(top, src, overlay, run_dir)
    worktree = run_dir / "copy" / (re.sub(r"[^A-Za-z0-9._-]", "_", top.name) or "work")
    worktree.mkdir(parents=True)
    own = gitcmd.OwnGit(git_dir, worktree)
    branch = BRANCH_PREFIX + run_id if is_git else None
    if branch:
        # Create-only (empty old value): an existing branch of that name is never moved.
        gitcmd.run(top, "update-ref", "-m", "k2lsp: run start", f"refs/heads/{branch}", base, "")
        gitcmd.run(own, "update-ref", f"refs/heads/{branch}", base)
        gitcmd.run(own, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    else:
        gitcmd.run(own, "update-ref", "--no-deref", "HEAD", base)
    gitcmd.run(own, "read-tree", "--reset", "-u", "HEAD")
    root = worktree / prefix if prefix else worktree
    return RunCopy(
        root=root,
        source=src,
        run_id=run_id,
        is_git=is_git,
        branch=branch,
        base_commit=base,
        run_dir=run_dir,
        worktree=worktree,
        git_dir=git_dir,
        prefix=prefix,
    )


def _is_binary(data: bytes | None) -> bool:
    if data is None:
        return False
    try:
        decode_text(data, "file")
    except PathError:
        return True
    return False
