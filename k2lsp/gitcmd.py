"""Thin, byte-exact wrapper around the `git` command line used by run copies and delivery.

Plumbing goes through the git CLI (as GitPython itself does) so bytes, environment (a temporary
`GIT_INDEX_FILE`) and exit codes stay exact. Every call runs with a clean git environment (no
inherited `GIT_DIR`/`GIT_INDEX_FILE` from hooks), no user hooks, no pager, no colour.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from k2lsp.errors import K2lspError

# Settings forced on every call: no user hooks, no colour/pager, stable paths and prefixes.
_FORCED = [
    "-c",
    "core.hooksPath=" + os.devnull,
    "-c",
    "core.quotePath=off",
    "-c",
    "color.ui=false",
    "-c",
    "diff.noprefix=false",
    "-c",
    "diff.mnemonicPrefix=false",
    "-c",
    "advice.detachedHead=false",
    "-c",
    "gc.auto=0",
]
# Variables that would redirect git away from the repository we name explicitly.
_SCRUB = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_PREFIX",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CEILING_DIRECTORIES",
)
# Identity used when the user has none configured (e.g. CI as root on a fresh machine).
FALLBACK_NAME = "k2lsp"
FALLBACK_EMAIL = "k2lsp@localhost"


class GitError(K2lspError):
    """A git command failed; the message carries git's own stderr."""

    def __init__(self, message: str, *, returncode: int = 1, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


def git_available() -> bool:
    """Is a `git` executable on PATH?"""
    return shutil.which("git") is not None


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without variables that redirect git, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    env["GIT_OPTIONAL_LOCKS"] = "0"
    if extra:
        env.update(extra)
    return env


def run(
    cwd: Path | str,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run `git args...` in `cwd`; raise GitError (with stderr) unless the exit code is ok."""
    cmd = ["git", *_FORCED, *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=str(cwd),
            env=base_env(env),
            input=input,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        if not Path(cwd).is_dir():
            raise GitError(f"folder {cwd} does not exist") from None
        raise GitError("git is not installed or not on PATH; install git and retry") from None
    if check and proc.returncode not in ok_codes:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise GitError(
            f"git {' '.join(args[:3])} failed (exit {proc.returncode}): {err or 'no message'}",
            returncode=proc.returncode,
            stderr=err,
        )
    return proc


def out(
    cwd: Path | str, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None
) -> str:
    """Stdout of a successful git command as stripped text."""
    return run(cwd, *args, env=env, input=input).stdout.decode("utf-8", "surrogateescape").strip()


def toplevel(path: Path) -> Path | None:
    """The work-tree root of the repository containing `path`, or None if not in one."""
    if not git_available():
        return None
    proc = run(path, "rev-parse", "--show-toplevel", check=False)
    text = proc.stdout.decode("utf-8", "surrogateescape").strip()
    if proc.returncode != 0 or not text:
        return None
    return Path(text).resolve()


def common_dir(cwd: Path) -> Path:
    """The repository's common git directory (shared by all its worktrees)."""
    return (Path(cwd) / out(cwd, "rev-parse", "--git-common-dir")).resolve()


def rev(cwd: Path | str, name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The object id `name` resolves to, or None (e.g. HEAD of a repo with no commits)."""
    proc = run(
        cwd, "rev-parse", "--verify", "--quiet", "--end-of-options", name, env=env, check=False
    )
    text = proc.stdout.decode().strip()
    return text if proc.returncode == 0 and text else None


def identity_env(cwd: Path | str) -> dict[str, str]:
    """Author/committer variables when the user has no identity configured, else empty."""
    name = run(cwd, "config", "user.name", check=False).stdout.strip()
    email = run(cwd, "config", "user.email", check=False).stdout.strip()
    if name and email:
        return {}
    return {
        "GIT_AUTHOR_NAME": FALLBACK_NAME,
        "GIT_AUTHOR_EMAIL": FALLBACK_EMAIL,
        "GIT_COMMITTER_NAME": FALLBACK_NAME,
        "GIT_COMMITTER_EMAIL": FALLBACK_EMAIL,
    }


@contextmanager
def temp_index(seed: Path | None = None, where: Path | None = None) -> Iterator[dict[str, str]]:
    """Env with GIT_INDEX_FILE pointing at a private temporary index (a copy of `seed` if given).

    The user's own index is never read for writing nor modified.
    """
    fd, name = tempfile.mkstemp(prefix="k2lsp-index-", dir=str(where) if where else None)
    os.close(fd)
    os.unlink(name)  # git wants to create it (an empty file is not a valid index)
    try:
        if seed is not None and seed.is_file():
            shutil.copy2(seed, name)  # keeps its mtime: git's racy-clean check needs it
        yield {"GIT_INDEX_FILE": name}
    finally:
        for leftover in (name, name + ".lock"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def snapshot_tree(worktree: Path, env_index: Mapping[str, str], exclude: Sequence[str] = ()) -> str:
    """Stage the whole work tree (honouring .gitignore) into the temp index and write a tree.

    Paths matching the `exclude` glob pathspecs keep their committed version (or stay out).
    """
    run(worktree, "add", "-A", "--ignore-errors", "--", ":/", env=env_index, ok_codes=(0, 1))
    if exclude:
        specs = [f":(top,glob)**/{pattern}" for pattern in exclude]
        run(worktree, "reset", "-q", "--", *specs, env=env_index, ok_codes=(0, 1))
    return out(worktree, "write-tree", env=env_index)


def commit_tree(cwd: Path | str, tree: str, parents: Sequence[str], message: str) -> str:
    """Create a commit object (no ref is moved) and return its id."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return out(cwd, *args, env=identity_env(cwd), input=message.encode("utf-8"))


def cat_file(cwd: Path | str, spec: str, *, filters: bool = False) -> bytes | None:
    """Bytes of `rev:path` (with checkout filters applied if `filters`), or None if absent."""
    args = ["cat-file", "--filters" if filters else "blob", spec]
    proc = run(cwd, *args, check=False)
    return proc.stdout if proc.returncode == 0 else None
