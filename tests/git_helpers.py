"""Helpers for tests that build real git repositories in tmp_path."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git in `cwd` (test identity, no user hooks) and return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ENV)
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr.decode()}")
    return proc.stdout.decode()


def write(root: Path, files: dict[str, str | bytes]) -> None:
    """Write `files` (relative path -> text or bytes) under `root`."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_bytes(content.encode("utf-8"))
        else:
            path.write_bytes(content)


def make_repo(path: Path, files: dict[str, str | bytes], *, commit: bool = True) -> Path:
    """A git repository at `path` holding `files` (committed unless `commit` is False)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    write(path, files)
    if commit:
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", "initial")
    return path


def tree_bytes(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root` (outside .git) -> (bytes, mode); symlinks by their target."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = (os.fsencode(os.readlink(path)), 0o120000)
            else:
                out[rel] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return out


def repo_state(repo: Path) -> dict[str, str]:
    """What must never change behind the user's back: index bytes, HEAD, refs, stash, status."""
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    index = git_dir / "index"
    return {
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else "",
        "head": (git_dir / "HEAD").read_text(),
        "branches": "".join(
            line + "\n"
            for line in git(
                repo, "for-each-ref", "refs/heads", "--format=%(refname) %(objectname)"
            ).splitlines()
            if not line.startswith("refs/heads/k2lsp/")
        ),
        "stash": git(repo, "stash", "list"),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain=v1", "-uall"),
    }
