"""The repository map's on-disk store: one SQLite database per repository root.

Everything that grows with the repository lives here, not in memory: per-content records
(definitions, identifier votes, per-definition priors), per-name totals, and one scored row
per definition kept in rank order by an index, so a render reads the best few rows and one
edit rewrites the rows of the files it touches. The database sits in k2lsp's cache folder,
never in the repository. Paths are stored as UTF-8 bytes (undecodable names survive) and
only ever passed as SQL parameters. A database that cannot be read, or was written by
another version or for another root, is deleted and rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import tempfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STORE_VERSION = 1
_MAX_STORES = 32
_CHUNK = 500  # SQL parameters per statement

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files(path BLOB PRIMARY KEY, mtime INT, size INT, digest TEXT,
    checked INT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(digest TEXT PRIMARY KEY, syms BLOB, votes BLOB,
    statics BLOB, names BLOB, note TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS names(name TEXT PRIMARY KEY, votes INT NOT NULL DEFAULT 0,
    defs INT NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS defs(path BLOB, idx INT, name TEXT, neg REAL,
    PRIMARY KEY(path, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rendered(key TEXT PRIMARY KEY, token TEXT, text TEXT) WITHOUT ROWID;
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS defs_rank ON defs(neg, path, idx);
CREATE INDEX IF NOT EXISTS defs_name ON defs(name, path);
"""


def enc(rel: str) -> bytes:
    """A repository path as stored (UTF-8, undecodable bytes kept)."""
    return rel.encode("utf-8", "surrogateescape")


def dec(raw: bytes) -> str:
    """A stored path back as the str the file lister gives."""
    return bytes(raw).decode("utf-8", "surrogateescape")


def chunks(items: Iterable[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    """`items` in lists of at most `size`."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def store_path(cache_dir: Path, root: Path) -> Path:
    """Where the database of `root` lives under `cache_dir`."""
    key = hashlib.sha1(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return Path(cache_dir) / "stores" / f"{key}.sqlite"


class Store:
    """One root's database (opened, checked, rebuilt when unusable)."""

    def __init__(self, cache_dir: Path, root: Path) -> None:
        self.path = store_path(cache_dir, root)
        self.root = str(root)
        self.rebuilt = ""  # why an existing database was thrown away, if it was
        self.db = self._open()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        # A cache: no fsync (the old pickle cache had none either); a damaged file is rebuilt.
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-8000")  # at most ~8 MiB of pages in memory
        db.execute("PRAGMA journal_size_limit=8388608")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_checked()
        except (OSError, sqlite3.OperationalError) as exc:  # unwritable, locked for too long
            fallback = Path(tempfile.mkdtemp(prefix="k2lsp-repomap-")) / self.path.name
            log.warning(
                "cannot use the repo map store %s (%s); using %s for this process: check that "
                "the cache folder is writable",
                self.path,
                exc,
                fallback,
            )
            self.path = fallback
            return self._open_checked()

    def _open_checked(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            problem = self._check(db)
            if not problem:
                return db
            db.close()
        except sqlite3.OperationalError:
            raise  # locked or unwritable: not a reason to delete it
        except sqlite3.DatabaseError as exc:
            problem = f"unreadable ({exc})"
        self.rebuilt = problem
        log.warning("repo map store %s is %s; rebuilding it", self.path, problem)
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        db = self._connect()
        self._check(db)
        return db

    def _check(self, db: sqlite3.Connection) -> str:
        """Empty when `db` is usable (creating it when new), else what is wrong with it."""
        db.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                for stmt in (_SCHEMA + _INDEXES).split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("version", STORE_VERSION), ("root", self.root), ("gen", 0), ("defs", 0)],
                )
                db.execute("COMMIT")
                self._prune()
                return ""
            if "meta" not in tables:
                return "not a k2lsp repo map store"
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("version") != STORE_VERSION:
                return f"from another k2lsp version (store version {meta.get('version')!r})"
            if meta.get("root") != self.root:
                return "for another repository root"
            return ""
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def meta(self, key: str) -> Any:
        """One meta value (None when unset)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: Any) -> None:
        """Set one meta value (inside the caller's transaction)."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def load_index(self) -> dict[str, tuple[int, int, str, int]]:
        """path -> (mtime_ns, size, content hash, time checked)."""
        rows = self.db.execute("SELECT path, mtime, size, digest, checked FROM files")
        return {dec(p): (m, s, d, c) for p, m, s, d, c in rows}

    def record(self, digest: str) -> tuple[bytes, bytes, str, bytes, bytes] | None:
        """(symbols, votes, note, statics, names) of one content, marshalled; None if unknown."""
        row = self.db.execute(
            "SELECT syms, votes, note, statics, names FROM records WHERE digest = ?", (digest,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def symbols_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """digest -> marshalled symbol tuples, for the digests given that are known."""
        out: dict[str, bytes] = {}
        for batch in chunks(set(digests)):
            marks = ",".join("?" * len(batch))
            for d, syms in self.db.execute(
                f"SELECT digest, syms FROM records WHERE digest IN ({marks})", batch
            ):
                out[d] = syms
        return out

    def totals(self, names: Iterable[str]) -> dict[str, tuple[int, int]]:
        """name -> (votes over every file, definitions) for the names given that have any."""
        out: dict[str, tuple[int, int]] = {}
        for batch in chunks(set(names)):
            marks = ",".join("?" * len(batch))
            for n, v, d in self.db.execute(
                f"SELECT name, votes, defs FROM names WHERE name IN ({marks})", batch
            ):
                out[n] = (v, d)
        return out

    def files_defining(self, names: Iterable[str]) -> set[str]:
        """Files that define any of `names`."""
        out: set[str] = set()
        for batch in chunks(set(names)):
            marks = ",".join("?" * len(batch))
            for (p,) in self.db.execute(
                f"SELECT DISTINCT path FROM defs WHERE name IN ({marks})", batch
            ):
                out.add(dec(p))
        return out

    def ranked_rows(
        self, under: tuple[str, ...] = ()
    ) -> Generator[tuple[float, str, int], None, None]:
        """(-score, file, symbol index) of every definition, best first (`under`: only files
        equal to or below one of these paths)."""
        sql, args = "SELECT neg, path, idx FROM defs", []
        if under:
            conds = []
            for p in under:
                prefix = enc(p.rstrip("/") + "/")
                conds.append("(path = ? OR substr(path, 1, ?) = ?)")
                args += [enc(p), len(prefix), prefix]
            sql += " WHERE " + " OR ".join(conds)
        cur = self.db.execute(sql + " ORDER BY neg, path, idx", args)
        try:
            for neg, p, i in cur:
                yield neg, dec(p), i
        finally:
            cur.close()

    def _prune(self) -> None:
        """Keep the newest `_MAX_STORES` databases (one per root)."""
        try:
            stores = sorted(self.path.parent.glob("*.sqlite"), key=lambda p: p.stat().st_mtime)
            for old in stores[:-_MAX_STORES]:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(old) + suffix).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot prune repo map stores: %s", exc)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()
