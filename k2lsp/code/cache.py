"""On-disk cache of per-file analysis (pickle), keyed by content hash.

Layout under the cache dir (never inside the user's repository, so it never shows in `git
status`): `packs/<root-key>.bin` holds a root's whole index (path -> mtime, size, hash) and
the records of those hashes, for a fast warm start; `blobs/<hash>.bin` holds single records
written after incremental changes, so a later process finds them without re-parsing even when
the pack is older.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_VERSION = 9
_MAX_PACKS = 32


def default_cache_dir(state_dir: Path | None = None) -> Path:
    """`<state_dir>/cache/repomap` when a state dir is configured, else the user cache dir."""
    if state_dir is not None:
        return Path(state_dir) / "cache" / "repomap"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "k2lsp" / "repomap"


def content_hash(data: bytes) -> str:
    """Stable hash of file content (hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _atomic_dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _load(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a corrupt cache is rebuilt, never fatal
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None


class DiskCache:
    """Packs and blobs for one repository root."""

    def __init__(self, cache_dir: Path, root: Path) -> None:
        self.dir = Path(cache_dir)
        key = hashlib.sha1(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:20]
        self.pack_path = self.dir / "packs" / f"{key}.bin"

    def load_pack(self) -> dict[str, Any]:
        """The pack (`index`, `records` and extras saved with it); empty when missing or stale."""
        data = _load(self.pack_path)
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        return data

    def save_pack(
        self,
        index: dict[str, tuple[int, int, str, int]],
        records: dict[str, Any],
        extra: dict[str, Any],
    ) -> None:
        """Write the whole pack atomically (records limited to hashes the index uses)."""
        used = {entry[2] for entry in index.values()}
        payload = {
            **extra,
            "version": CACHE_VERSION,
            "index": index,
            "records": {h: r for h, r in records.items() if h in used},
        }
        try:
            _atomic_dump(self.pack_path, payload)
            self._prune()
        except OSError as exc:
            log.warning("cannot write repo map cache %s: %s", self.pack_path, exc)

    def load_rendered(self, token: str) -> dict[str, str]:
        """Map texts rendered for the repository state `token` (empty for any other state)."""
        data = _load(self.pack_path.with_suffix(".render"))
        if (
            isinstance(data, tuple)
            and len(data) == 3
            and data[0] == CACHE_VERSION
            and data[1] == token
        ):
            return dict(data[2])
        return {}

    def save_rendered(self, token: str, texts: dict[str, str]) -> None:
        """Remember rendered map texts for the repository state `token`."""
        try:
            _atomic_dump(self.pack_path.with_suffix(".render"), (CACHE_VERSION, token, texts))
        except OSError as exc:
            log.warning("cannot write repo map cache: %s", exc)

    def load_blob(self, digest: str) -> Any:
        """A single record saved by `save_blob`, or None."""
        data = _load(self.dir / "blobs" / f"{digest}.bin")
        if isinstance(data, tuple) and len(data) == 2 and data[0] == CACHE_VERSION:
            return data[1]
        return None

    def save_blob(self, digest: str, record: Any) -> None:
        """Store one record by content hash."""
        try:
            _atomic_dump(self.dir / "blobs" / f"{digest}.bin", (CACHE_VERSION, record))
        except OSError as exc:
            log.warning("cannot write repo map cache blob: %s", exc)

    def _prune(self) -> None:
        packs = sorted(self.pack_path.parent.glob("*.bin"), key=lambda p: p.stat().st_mtime)
        for old in packs[:-_MAX_PACKS]:
            old.unlink(missing_ok=True)
            old.with_suffix(".render").unlink(missing_ok=True)
        blobs_dir = self.dir / "blobs"
        if blobs_dir.is_dir():
            blobs = sorted(blobs_dir.glob("*.bin"), key=lambda p: p.stat().st_mtime)
            for old in blobs[: max(0, len(blobs) - 4096)]:
                old.unlink(missing_ok=True)
