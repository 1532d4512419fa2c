"""Who sandboxed commands run as, and handing the run copy to that user and back.

As an ordinary user, commands run as that same user (the run copy is already theirs). As root,
commands never run as uid 0: they run as a dedicated unprivileged uid (`SANDBOX_UID`, owned by
no account), so root-only host files (/etc/shadow, the docker daemon's files, other users'
homes) stay unreadable, and the run copy is handed to that uid before the command starts and
handed back after every sandboxed process is gone.

Both walks treat the tree as written by an attacker: they move from folder to folder through
file descriptors opened with O_NOFOLLOW, change ownership with fchown/fchownat(NOFOLLOW) only
(never chmod, never a path that is resolved twice), never leave the starting file system, and
stop at a fixed depth. A symlink or a swapped folder can therefore never redirect them to a
host file outside the run copy.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# 0x70000000: far above any account or subuid range a distribution hands out.
SANDBOX_UID = 1879048192
SANDBOX_GID = 1879048192
MAX_DEPTH = 128
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def sandbox_ids() -> tuple[int, int]:
    """uid and gid sandboxed commands run as: this user's own, or SANDBOX_UID when root."""
    if os.geteuid() == 0:
        return SANDBOX_UID, SANDBOX_GID
    return os.geteuid(), os.getegid()


def needs_handover(read_only: bool) -> bool:
    """Whether the run copy must change owner for the sandbox to write it (root only)."""
    return os.geteuid() == 0 and not read_only


@dataclass
class Handover:
    """The ownership a handover changed, to restore afterwards."""

    root: Path
    owner: tuple[int, int]  # owner of the run copy's top folder before the handover
    changed: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (dev, ino)


def hand_over(root: Path, to: tuple[int, int] | None = None) -> Handover:
    """Give every entry under `root` to the sandbox uid (call while no sandbox process runs)."""
    uid, gid = to or sandbox_ids()
    fd = os.open(root, _DIR_FLAGS)
    try:
        st = os.fstat(fd)
        record = Handover(Path(root), (st.st_uid, st.st_gid))

        def give(dirfd: int, name: str | None, st: os.stat_result) -> None:
            if (st.st_uid, st.st_gid) == (uid, gid):
                return
            record.changed[(st.st_dev, st.st_ino)] = (st.st_uid, st.st_gid)
            _chown(dirfd, name, uid, gid)

        _walk(fd, give)
    finally:
        os.close(fd)
    return record


def hand_back(record: Handover, uid: int | None = None) -> None:
    """Return entries the sandbox uid owns to their previous owner (new ones: the top's owner).

    Safe while sandbox processes still run (they can only rename inside the run copy), but
    callers stop them first so the result is complete.
    """
    sandbox_uid = SANDBOX_UID if uid is None else uid
    try:
        fd = os.open(record.root, _DIR_FLAGS)
    except OSError:
        return  # the run copy is gone (closed run): nothing to give back

    def give_back(dirfd: int, name: str | None, st: os.stat_result) -> None:
        if st.st_uid != sandbox_uid:
            return
        owner = record.changed.get((st.st_dev, st.st_ino), record.owner)
        _chown(dirfd, name, *owner)

    try:
        _walk(fd, give_back)
    finally:
        os.close(fd)


def _chown(dirfd: int, name: str | None, uid: int, gid: int) -> None:
    try:
        if name is None:
            os.fchown(dirfd, uid, gid)
        else:
            os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        pass  # vanished or replaced meanwhile: whatever is there now is inside the run copy


def _walk(top: int, visit: Callable[[int, str | None, os.stat_result], None]) -> None:
    """Call visit(dirfd, name, lstat) for `top` itself (name None) and everything below it."""
    dev = os.fstat(top).st_dev
    visit(top, None, os.fstat(top))
    stack: list[tuple[int, int]] = [(os.dup(top), 0)]
    while stack:
        dirfd, depth = stack.pop()
        try:
            names = os.listdir(dirfd)
        except OSError:
            names = []
        for name in names:
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != dev:
                continue
            if not stat.S_ISDIR(st.st_mode):
                visit(dirfd, name, st)
                continue
            if depth >= MAX_DEPTH:
                continue
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
            except OSError:
                continue  # replaced by a symlink or a file since the stat
            sub_st = os.fstat(sub)
            if sub_st.st_dev != dev:
                os.close(sub)
                continue
            visit(sub, None, sub_st)
            stack.append((sub, depth + 1))
        os.close(dirfd)


def untraversable_ancestors(paths: list[Path], uid: int, gid: int) -> list[Path]:
    """The top-most folders above `paths` that `uid` could not pass through (e.g. /root, 0700).

    Sandboxes cover each with an empty tmpfs before binding the paths below it, so the sandbox
    user reaches the run copy without any host folder's permissions being changed.
    """
    found: list[Path] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if parent == Path("/"):
                continue
            if any(parent == f or f in parent.parents for f in found):
                break
            try:
                st = parent.stat()
            except OSError:
                break
            if st.st_uid == uid:
                bit = stat.S_IXUSR
            elif st.st_gid == gid:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not st.st_mode & bit:
                found.append(parent)
                break
    return found


SYSTEM_FOLDERS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/usr",
    "/var",
    "/home",
    "/tmp",
)


def refuse_system_folder(root: Path) -> None:
    """Refuse to hand `/`, a system folder or a home folder (or one above it) to the sandbox."""
    from k2lsp.errors import UsageError

    resolved = Path(os.path.realpath(root))
    homes = {Path(os.path.expanduser("~")).resolve()}
    if (
        resolved == Path("/")
        or str(resolved) in SYSTEM_FOLDERS
        or any(resolved == h or resolved in h.parents for h in homes)
    ):
        raise UsageError(
            f"refusing to run sandboxed commands as root in {resolved}: the sandbox user would "
            "be given this whole folder; point k2lsp at a project folder instead"
        )


class Lease:
    """Hands the run copy to the sandbox uid while at least one command runs (root only).

    Commands of one sandbox may overlap (a batch of tool calls): the first one in hands the run
    copy over, the last one out hands it back, after its own processes are gone.
    """

    def __init__(self, root: Path, read_only: bool) -> None:
        self.root = root
        self.active = needs_handover(read_only)
        if self.active:
            refuse_system_folder(root)
        self._lock = threading.Lock()
        self._users = 0
        self._record: Handover | None = None

    def acquire(self) -> None:
        """Start of a command."""
        if not self.active:
            return
        with self._lock:
            if self._users == 0:
                self._record = hand_over(self.root)
            self._users += 1

    def release(self) -> None:
        """End of a command (its processes are gone)."""
        if not self.active:
            return
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._record is not None:
                hand_back(self._record)
                self._record = None
