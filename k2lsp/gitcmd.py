"""The one git runner: a thin, byte-exact wrapper around the `git` command line.

Plumbing goes through the git CLI (as GitPython itself does) so bytes, environment (a temporary
`GIT_INDEX_FILE`) and exit codes stay exact. Every call runs with a clean git environment (no
inherited `GIT_DIR`/`GIT_INDEX_FILE` from hooks), no user hooks, no fsmonitor, no pager.

Two kinds of repository go through `run`:
- the user's own repository (a folder path): git finds it as usual and reads the user's config;
- a run copy (an `OwnGit`, or any folder inside a run copy): the run copy is hostile territory,
  so git gets the git dir k2lsp owns (`<run-dir>/git`) and the work tree explicitly, never
  discovers a `.git` there, reads no system/global config, gets an allowlisted environment
  (no API keys), an empty HOME, and `-c` overrides that neutralise every command-running
  setting (see `_HARDEN`). A folder path inside a run copy is mapped to its `OwnGit` by the
  run-dir layout (outermost match, so a fake layout inside the copy is never used).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from k2lsp.errors import K2lspError
from k2lsp.redact import known_secrets

# Settings forced on every call: no user hooks, no colour/pager, stable paths and prefixes.
_FORCED = [
    "-c",
    "core.hooksPath=" + os.devnull,
    "-c",
    "core.fsmonitor=false",
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
# Extra settings on every call against a run copy: nothing configurable runs a program.
_HARDEN = [
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.sshCommand=false",
    "core.gitProxy=",
    "core.askPass=false",
    "core.pager=cat",
    "core.editor=false",
    "sequence.editor=false",
    "core.alternateRefsCommand=",
    "credential.helper=",
    "protocol.allow=never",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "log.showSignature=false",
    "gpg.program=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "core.symlinks=true",
    "safe.bareRepository=all",
]
# The only variables of the k2lsp process a run-copy git call sees (no API keys, no GIT_*).
_ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", "SYSTEMROOT")
# A run-copy git call that takes longer than this is stopped (a hostile tree can be huge).
DEADLINE_S = 300.0
# Variables never passed to git, even for the user's own repository (git needs no API key).
_SECRET_NAME = re.compile(r"(?i)api[_-]?key|token|secret|passw|credential")
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


@dataclass(frozen=True)
class OwnGit:
    """A git dir k2lsp owns plus the (hostile) work tree it tracks; `cwd` is where relative
    pathspecs start (the work tree top unless set with `at`)."""

    git_dir: Path
    work_tree: Path
    cwd: Path | None = None

    def at(self, cwd: Path | str) -> OwnGit:
        """The same repository with relative pathspecs starting at `cwd`."""
        return OwnGit(self.git_dir, self.work_tree, Path(cwd))

    def argv(self, args: Sequence[str]) -> list[str]:
        """The full git command line for `args`."""
        hooks = _empty_home() / "hooks"
        cmd = ["git", f"--git-dir={self.git_dir}", f"--work-tree={self.work_tree}"]
        cmd += [*_FORCED, "-c", f"core.hooksPath={hooks}"]
        for setting in _HARDEN:
            cmd += ["-c", setting]
        return [*cmd, *args]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The allowlisted environment of a run-copy git call (no secrets, no user config)."""
        env = {k: os.environ[k] for k in _ENV_ALLOW if k in os.environ}
        home = str(_empty_home())
        env.update(
            HOME=home,
            XDG_CONFIG_HOME=home,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_ATTR_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
            GIT_OPTIONAL_LOCKS="0",
            GIT_NO_REPLACE_OBJECTS="1",
            GIT_PROTOCOL_FROM_USER="0",
        )
        for key, value in (extra or {}).items():
            if (key.startswith("GIT_") and key not in _SCRUB) or key == "GIT_INDEX_FILE":
                env[key] = value
        return env


@functools.lru_cache(maxsize=1)
def _empty_home() -> Path:
    """An empty, private folder used as HOME (and its `hooks` as hooksPath) for run-copy git."""
    home = Path(tempfile.mkdtemp(prefix="k2lsp-githome-"))
    (home / "hooks").mkdir()
    atexit.register(shutil.rmtree, home, True)
    return home


def run_copy_git(path: Path | str) -> OwnGit | None:
    """The `OwnGit` of the run copy containing `path`, or None when `path` is not in one.

    A run lives in `<state>/runs/<id>/` with `run.json`, `git/` (owned by k2lsp) and
    `copy/<name>/` (the work tree). The outermost match wins: the sandbox can fake the layout
    inside the copy but cannot write above it.
    """
    try:
        resolved = Path(os.path.abspath(path))
    except (OSError, ValueError):
        return None
    chain = [resolved, *resolved.parents]
    for i in range(len(chain) - 1, 0, -1):
        copy_dir = chain[i]
        if copy_dir.name != "copy":
            continue
        run_dir = copy_dir.parent
        if not (run_dir / "run.json").is_file() or not (run_dir / "git").is_dir():
            continue
        return OwnGit(run_dir / "git", chain[i - 1], resolved)
    return None


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without variables that redirect git, plus `extra`."""
    keys = [k for k in known_secrets() if k]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUB and not _SECRET_NAME.search(k) and not any(s in v for s in keys)
    }
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    env["GIT_OPTIONAL_LOCKS"] = "0"
    if extra:
        env.update(extra)
    return env


Where = Path | str | OwnGit


def run(
    cwd: Where,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    ok_codes: Sequence[int] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run `git args...` in `cwd` (a folder or an `OwnGit`); raise GitError (with stderr)
    unless the exit code is ok. A folder inside a run copy runs as that copy's `OwnGit`."""
    own: OwnGit | None
    if isinstance(cwd, OwnGit):
        own, folder = cwd, cwd.work_tree
    else:
        folder = Path(cwd)
        own = None if "--git-dir" in args else run_copy_git(folder)
    if own is not None:
        opts = args[: args.index("--")] if "--" in args else args
        if any(a.startswith(("--git-dir", "--work-tree", "-C")) for a in opts):
            raise GitError("refusing to redirect git away from the run's own repository")
        cmd, where = own.argv(args), own.cwd or own.work_tree
        proc_env, timeout = own.env(env), DEADLINE_S
    else:
        cmd, where, proc_env, timeout = ["git", *_FORCED, *args], folder, base_env(env), None
    try:
        proc = subprocess.run(
            cmd,
            cwd=str(where),
            env=proc_env,
            input=input,
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise GitError(
            f"git {' '.join(args[:3])} took over {DEADLINE_S:.0f} s on the run copy; stopped"
        ) from None
    except (FileNotFoundError, NotADirectoryError):
        if not Path(where).is_dir():
            raise GitError(f"folder {where} does not exist") from None
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
    cwd: Where, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None
) -> str:
    """Stdout of a successful git command as stripped text."""
    return run(cwd, *args, env=env, input=input).stdout.decode("utf-8", "surrogateescape").strip()


def toplevel(path: Path) -> Path | None:
    """The work-tree root of the repository containing `path`, or None if not in one."""
    if not git_available():
        return None
    own = run_copy_git(path)
    if own is not None:
        return own.work_tree.resolve()
    proc = run(path, "rev-parse", "--show-toplevel", check=False)
    text = proc.stdout.decode("utf-8", "surrogateescape").strip()
    if proc.returncode != 0 or not text:
        return None
    return Path(text).resolve()


def common_dir(cwd: Path) -> Path:
    """The repository's common git directory (shared by all its worktrees)."""
    own = run_copy_git(cwd)
    if own is not None:
        return own.git_dir.resolve()
    return (Path(cwd) / out(cwd, "rev-parse", "--git-common-dir")).resolve()


def rev(cwd: Where, name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The object id `name` resolves to, or None (e.g. HEAD of a repo with no commits)."""
    proc = run(
        cwd, "rev-parse", "--verify", "--quiet", "--end-of-options", name, env=env, check=False
    )
    text = proc.stdout.decode().strip()
    return text if proc.returncode == 0 and text else None


def identity_env(cwd: Where) -> dict[str, str]:
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


def identity_of(repo: Path) -> dict[str, str]:
    """The author/committer variables of the user's repository `repo` spelled out (its config,
    else the environment, else the k2lsp fallback), for a commit made with no user config."""
    ident: dict[str, str] = {}
    for role in ("AUTHOR", "COMMITTER"):
        proc = run(repo, "var", f"GIT_{role}_IDENT", check=False)
        text = proc.stdout.decode("utf-8", "replace").strip()
        if proc.returncode == 0 and "<" in text and ">" in text:
            ident[f"GIT_{role}_NAME"] = text.split("<", 1)[0].strip() or FALLBACK_NAME
            ident[f"GIT_{role}_EMAIL"] = text.split("<", 1)[1].split(">", 1)[0]
        else:
            ident[f"GIT_{role}_NAME"] = FALLBACK_NAME
            ident[f"GIT_{role}_EMAIL"] = FALLBACK_EMAIL
    return ident


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


def snapshot_tree(
    worktree: Where, env_index: Mapping[str, str], exclude: Sequence[str] = ()
) -> str:
    """Stage the whole work tree (honouring .gitignore) into the temp index and write a tree.

    Paths matching the `exclude` glob pathspecs keep their committed version (or stay out).
    """
    run(worktree, "add", "-A", "--ignore-errors", "--", ":/", env=env_index, ok_codes=(0, 1))
    if exclude:
        specs = [f":(top,glob)**/{pattern}" for pattern in exclude]
        run(worktree, "reset", "-q", "--", *specs, env=env_index, ok_codes=(0, 1))
    return out(worktree, "write-tree", env=env_index)


def commit_tree(
    cwd: Where,
    tree: str,
    parents: Sequence[str],
    message: str,
    identity: Mapping[str, str] | None = None,
) -> str:
    """Create a commit object (no ref is moved) and return its id."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    ident = identity_env(cwd) if identity is None else identity
    return out(cwd, *args, env=ident, input=message.encode("utf-8"))


def cat_file(cwd: Where, spec: str, *, filters: bool = False) -> bytes | None:
    """Bytes of `rev:path` (with checkout filters applied if `filters`), or None if absent."""
    args = ["cat-file", "--filters" if filters else "blob", spec]
    proc = run(cwd, *args, check=False)
    return proc.stdout if proc.returncode == 0 else None
