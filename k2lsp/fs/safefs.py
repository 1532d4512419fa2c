"""File operations inside a folder the sandbox can write to, immune to symlink swaps.

A path check followed by a write by path re-resolves the path twice; a process left running in
the sandbox can swap a folder for a symlink in between and redirect the write outside the run
copy. Here every operation walks the path one component at a time from a descriptor of the
root, opening each folder with `O_DIRECTORY | O_NOFOLLOW`, and acts on the last component
relative to its parent's descriptor (`openat`, `renameat`, `unlinkat`, `fchmod` on an open
descriptor). A symlink anywhere on the way fails with `PathError` instead of being followed.

    write_bytes(root, "pkg/mod.py", data)   # temp file + rename inside the same folder fd
    read_entry(root, "pkg/mod.py")          # bytes, or the link target for a symlink, or None
    write_link(root, "pkg/link", "mod.py")  # a symlink, also by rename
    unlink(root, "pkg/mod.py")              # removes a file or a link, never what it points at
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from k2lsp.errors import PathError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_MAX = 256 * 1024 * 1024


def _parts(rel: str | os.PathLike[str]) -> list[str]:
    text = os.fspath(rel).replace(os.sep, "/")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if not parts or text.startswith("/") or ".." in parts:
        raise PathError(f"{text!r} is not a path inside the folder")
    return parts


@contextlib.contextmanager
def _parent_fd(root: Path, parts: list[str], create: bool) -> Iterator[int]:
    """A descriptor of the folder holding `parts[-1]`, walked without following links."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for name in parts[:-1]:
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PathError(
                        f"{'/'.join(parts)}: {name} is a symlink or not a folder; "
                        "refusing to follow it"
                    ) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def write_bytes(
    root: Path, rel: str | os.PathLike[str], data: bytes, mode: int | None = None
) -> None:
    """Replace `rel` under `root` with `data` atomically (temp file + rename in one folder).

    Missing parent folders are created. `mode` defaults to the existing file's mode, else
    0o666 minus the umask. A symlink at `rel` is replaced by the file, never written through.
    """
    parts = _parts(rel)
    leaf = parts[-1]
    with _parent_fd(Path(root), parts, create=True) as dfd:
        if mode is None:
            try:
                st = os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
                mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None
            except FileNotFoundError:
                pass
        if mode is None:
            mode = 0o666 & ~_umask()
        tmp = f".{leaf[:100]}.{secrets.token_hex(4)}.k2tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb", closefd=True) as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            os.rename(tmp, leaf, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def write_link(root: Path, rel: str | os.PathLike[str], target: str) -> None:
    """Replace `rel` under `root` with a symlink to `target` atomically (a temporary link
    renamed over it in the same folder); missing parent folders are created."""
    parts = _parts(rel)
    leaf = parts[-1]
    with _parent_fd(Path(root), parts, create=True) as dfd:
        tmp = f".{leaf[:100]}.{secrets.token_hex(4)}.k2tmp"
        os.symlink(target, tmp, dir_fd=dfd)
        try:
            os.rename(tmp, leaf, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def unlink(root: Path, rel: str | os.PathLike[str]) -> None:
    """Remove the file or symlink `rel` under `root` (FileNotFoundError if absent)."""
    parts = _parts(rel)
    with _parent_fd(Path(root), parts, create=False) as dfd:
        os.unlink(parts[-1], dir_fd=dfd)


def read_entry(root: Path, rel: str | os.PathLike[str]) -> bytes | None:
    """Bytes of the file `rel` (a symlink's target text for a link), None when absent or a
    folder; no link on the way is followed."""
    parts = _parts(rel)
    try:
        with _parent_fd(Path(root), parts, create=False) as dfd:
            leaf = parts[-1]
            st = os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                return os.fsencode(os.readlink(leaf, dir_fd=dfd))
            if not stat.S_ISREG(st.st_mode):
                return None
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
            with os.fdopen(fd, "rb") as fh:
                return fh.read(_READ_MAX)
    except (FileNotFoundError, NotADirectoryError):
        return None


def open_read(root: Path, rel: str | os.PathLike[str]) -> BinaryIO:
    """A binary file object for the regular file `rel` under `root`, opened without following
    any link on the way (resolve the path first: in-tree links are then already followed)."""
    parts = _parts(rel)
    with _parent_fd(Path(root), parts, create=False) as dfd:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathError(f"{'/'.join(parts)} is a symlink; refusing to follow it") from None
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PathError(f"{'/'.join(parts)} is not a regular file")
    return os.fdopen(fd, "rb")


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
