"""What of the user's home a sandbox shows: toolchains installed there, and their variables."""

from __future__ import annotations

import os
from pathlib import Path

SMALL_TMPFS_MB = 64  # /var/tmp, /run, the hidden $HOME and folders covered for the sandbox user

# Toolchains under $HOME that stay visible (read-only) while the rest of $HOME is hidden.
HOME_TOOLCHAINS = (
    ".pyenv",
    ".local/bin",
    ".local/lib",
    ".cargo",
    ".rustup",
    "go",
    ".nvm",
    ".volta",
    ".bun",
    ".deno",
    ".cache/pypoetry/virtualenvs",
    ".virtualenvs",
    ".local/share/virtualenvs",
    ".sdkman",
)


# Toolchain variables whose default is under $HOME (which the sandbox replaces).
HOME_VARS = {
    "CARGO_HOME": ".cargo",
    "RUSTUP_HOME": ".rustup",
    "GOPATH": "go",
    "PYENV_ROOT": ".pyenv",
    "NVM_DIR": ".nvm",
    "VOLTA_HOME": ".volta",
}


def toolchain_env(env: dict[str, str]) -> dict[str, str]:
    """Point toolchains at their real (read-only) folders under the host's home."""
    home = Path(os.path.expanduser("~"))
    out = {}
    for var, rel in HOME_VARS.items():
        if var not in env and var not in os.environ and (home / rel).is_dir():
            out[var] = str(home / rel)
        elif var in os.environ:
            out[var] = os.environ[var]
    return out


def _home_args(ro_paths: list[str]) -> list[str]:
    """Hide $HOME behind a small empty tmpfs, re-exposing toolchains and `ro_paths` read-only.

    The caller binds the run copy and scratch afterwards, so a run copy inside $HOME stays
    reachable.
    """
    home = Path(os.path.expanduser("~")).resolve()
    if home == Path("/") or not home.is_dir():
        return []
    args = ["--size", str(SMALL_TMPFS_MB * 1024 * 1024), "--tmpfs", str(home)]
    keep = [home / rel for rel in HOME_TOOLCHAINS] + [
        Path(p).expanduser().resolve() for p in ro_paths
    ]
    for path in keep:
        if path.exists():
            args += ["--ro-bind-try", str(path), str(path)]
    return args


def git_dirs(root: Path) -> list[Path]:
    """Git folders to show the sandbox for `root`: none. A run copy has no `.git` (k2lsp's own
    git dir lives outside it and is never shown to the sandbox), and a `.git` found in `root`
    was written by the sandbox itself: it is never read or followed (docs/security.md)."""
    del root
    return []
