"""Where the repository map's store lives, and the content hash its records are keyed by.

The store (`store.py`, one SQLite database per root) is kept under k2lsp's cache folder,
never inside the user's repository, so it never shows in `git status`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def default_cache_dir(state_dir: Path | None = None) -> Path:
    """`<state_dir>/cache/repomap` when a state dir is configured, else the user cache dir."""
    if state_dir is not None:
        return Path(state_dir) / "cache" / "repomap"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "k2lsp" / "repomap"


def content_hash(data: bytes) -> str:
    """Stable hash of file content (hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
