"""The repository map: a ranked, token-budgeted outline of the definitions in a repository.

Definitions are ranked by how often other files mention their name (a one-step PageRank:
each referring file votes with the square root of its mention count, split between all
definitions of that name), boosted for files and identifiers the task mentions. Per-file
analysis is cached on disk by content hash and refreshed incrementally: a file is re-read
only when its size or mtime changed (or its mtime is too recent to trust) and re-parsed only
when its content hash changed, so the map is never stale.

Memory stays bounded whatever the repository size: records, per-name totals and the scored
rank of every definition live in an SQLite store (`store.py`) in k2lsp's cache folder; this
object keeps the path index (a few tuples per file), a few hundred decoded records and the
last rendered texts. A refresh is one write transaction; another process's writes are
noticed by a generation counter and the index re-read.
"""

from __future__ import annotations

import logging
import marshal
import os
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k2lsp.code.cache import content_hash, default_cache_dir
from k2lsp.code.files import is_source, list_source_files
from k2lsp.code.mapbulk import BulkRank
from k2lsp.code.mapdeltas import MapDeltas
from k2lsp.code.mappool import analyze_many
from k2lsp.code.mapreads import MapReads
from k2lsp.code.maprecord import (
    _BULK_FILES,
    _RACY_NS,
    _UNUSED_RECORDS,
    MAX_FILES,
    Record,
    _analyze,
)
from k2lsp.code.store import Store
from k2lsp.errors import PathError
from k2lsp.fs import safefs

log = logging.getLogger(__name__)


@dataclass
class RefreshStats:
    """What one refresh did."""

    files: int = 0
    rehashed: int = 0
    parsed: int = 0
    removed: int = 0
    seconds: float = 0.0


class RepoMap(MapReads, BulkRank, MapDeltas):
    """A map of one root: the path index in memory, everything else in its on-disk store."""

    def __init__(
        self, root: Path, cache_dir: Path | None = None, files: list[str] | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self._root_str = str(self.root)
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self.store = Store(self.cache_dir, self.root)
        self.fixed_files = files
        self.index: dict[str, tuple[int, int, str, int]] = {}
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._decoded: OrderedDict[str, tuple[tuple[Any, ...], ...]] = OrderedDict()
        self._gen: int | None = None
        self.left_out = 0
        self.total_defs = 0
        self._token: str | None = None
        self._token_sum: int | None = None
        self._lock = threading.RLock()
        # Within one refresh: vote and definition-count changes per name, files rewritten.
        self._votes_delta: dict[str, int] = {}
        self._defs_delta: Counter[str] = Counter()
        self._changed: set[str] = set()
        self._new_records: list[tuple[Any, ...]] = []
        self._new_files: list[tuple[Any, ...]] = []
        self._bulk_files: dict[str, tuple[tuple[str, ...], bytes]] = {}
        self._known_records = True
        self._spilled = False
        self._journal: object | None = None  # the token of the last refresh's caller

    # ----- keeping up to date -------------------------------------------------------------
    def refresh(
        self, changed: Collection[str] | None = None, journal: object | None = None
    ) -> RefreshStats:
        """Bring the map up to date with the files on disk; return what was done.

        With `changed` (paths relative to the root) and a `journal` token, the caller states
        that since this map's last refresh under the same token nothing but those paths
        changed: only they are looked at, so the cost depends on the edit, not on the
        repository. A first refresh, a different token, a path the map does not know yet
        (new files follow the listing rules: a full scan decides) or another process's write
        to the store makes it a full scan."""
        with self._lock:
            last, self._journal = self._journal, None  # set again once this one succeeds
            only = set(changed) if changed is not None and journal is not None else None
            if only is not None and (journal is not last or not self.index):
                only = None
            try:
                stats = self._refresh(only)
                self._journal = journal
                return stats
            except sqlite3.OperationalError:
                raise  # locked or unwritable: the store itself is fine
            except sqlite3.DatabaseError as exc:  # damaged while in use: start again
                log.warning("repo map store %s failed (%s); rebuilding it", self.store.path, exc)
                self.store.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(str(self.store.path) + suffix).unlink(missing_ok=True)
                self.store = Store(self.cache_dir, self.root)
                self._gen = None
                return self._refresh(None)

    def _sync(self) -> bool:
        """Re-read the index when the store changed under us (another process wrote it);
        True when it did."""
        gen = self.store.meta("gen")
        if gen == self._gen:
            return False
        self.index = self.store.load_index()
        self.total_defs = int(self.store.meta("defs") or 0)
        self._gen, self._token, self._token_sum = gen, None, None
        return True

    def _refresh(self, only: set[str] | None) -> RefreshStats:
        t0 = time.perf_counter()
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._sync():
                only = None  # written by someone else: what changed is not known
            stats = self._scan_some(only) if only is not None else None
            if stats is None:
                stats = self._scan()
            if stats.rehashed or stats.removed:
                self._gen = int(self._gen or 0) + 1
                self.store.set_meta("gen", self._gen)
                self.store.set_meta("defs", self.total_defs)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._gen = None  # the index may hold uncommitted changes: re-read it next time
            self._records.clear()
            raise
        finally:
            self._votes_delta, self._defs_delta, self._changed = {}, Counter(), set()
            self._new_records, self._new_files, self._bulk_files = [], [], {}
        stats.seconds = time.perf_counter() - t0
        return stats

    def _scan_some(self, only: set[str]) -> RefreshStats | None:
        """Look at `only` (a journal's paths); None when a full scan must decide instead
        (a path the map does not index yet: whether it is listed is the listing's call)."""
        index = self.index
        fixed = set(self.fixed_files) if self.fixed_files is not None else None
        prefix = os.path.join(self._root_str, "")
        todo: list[tuple[str, os.stat_result | None]] = []
        for rel in sorted(only):
            if fixed is not None and rel not in fixed:
                continue
            try:
                st: os.stat_result | None = os.stat(prefix + rel)
            except OSError:
                st = None
            if rel not in index:
                if st is None or not is_source(rel.rsplit("/", 1)[-1]):
                    continue  # created and deleted again, or not a file the map looks at
                return None
            todo.append((rel, st))
        stats = RefreshStats()
        now = time.time_ns()
        for rel, st in todo:
            old = index[rel]
            if st is None:
                self._remove(rel)
                stats.removed += 1
            elif not (
                old[0] == st.st_mtime_ns and old[1] == st.st_size and old[3] - old[0] > _RACY_NS
            ):
                self._update(rel, st.st_mtime_ns, st.st_size, now, old, stats, False)
        stats.files = len(index)
        self._flush_rows()
        if self._changed or self._votes_delta or self._defs_delta:
            self._rerank()
        return stats

    def _scan(self) -> RefreshStats:
        stats = RefreshStats()
        bulk = not self.index  # cold: totals and ranks computed once at the end
        if bulk:
            self._bulk_files, self._spilled = {}, False
            self.store.db.execute("DELETE FROM names")
            self.store.db.execute("DELETE FROM defs")
            self._known_records = (
                self.store.db.execute("SELECT 1 FROM records").fetchone() is not None
            )
        paths = self.fixed_files if self.fixed_files is not None else list_source_files(self.root)
        self.left_out = max(0, len(paths) - MAX_FILES)
        paths = paths[:MAX_FILES]
        now = time.time_ns()
        prefix = os.path.join(self._root_str, "")
        stat = os.stat
        seen: set[str] = set()
        index = self.index
        todo: list[tuple[str, int, int, tuple[int, int, str, int] | None]] = []
        for rel in paths:
            try:
                st = stat(prefix + rel)
            except OSError:
                continue
            seen.add(rel)
            old = index.get(rel)
            if (
                old is not None
                and old[0] == st.st_mtime_ns
                and old[1] == st.st_size
                and old[3] - old[0] > _RACY_NS
            ):
                continue
            todo.append((rel, st.st_mtime_ns, st.st_size, old))
        # A cold build of many files: read and parse in worker processes (same records).
        pooled = (
            analyze_many(self._root_str, [(t[0], t[2]) for t in todo])
            if bulk and not self._known_records
            else None
        )
        if pooled is None:
            for rel, mtime, size, old in todo:
                self._update(rel, mtime, size, now, old, stats, bulk)
        else:
            files = iter(todo)
            for items, votes, defs in pooled:
                self._count_sums(votes, defs)
                for got, (rel, mtime, size, old) in zip(items, files, strict=False):
                    if got is not None:
                        stats.rehashed += 1
                        stats.parsed += 1
                        self._apply(rel, mtime, size, now, old, bulk, got[0], got[1], None, True)
        for rel in [r for r in index if r not in seen]:
            self._remove(rel)
            stats.removed += 1
        stats.files = len(seen)
        self._flush_rows()
        if bulk:
            self._bulk_rank()
        elif self._changed or self._votes_delta or self._defs_delta:
            self._rerank()
        return stats

    def _update(
        self,
        rel: str,
        mtime: int,
        size: int,
        now: int,
        old: tuple[int, int, str, int] | None,
        stats: RefreshStats,
        bulk: bool,
    ) -> None:
        try:  # never through a link: the sandbox may have planted one to a host file
            with safefs.open_read(Path(self._root_str), rel) as fh:
                data = fh.read()
        except (OSError, PathError):
            return
        stats.rehashed += 1
        digest = content_hash(data)
        if old is not None and old[2] == digest:
            self._set_entry(rel, (mtime, size, digest, now))
            return
        rec = self.record(digest, keep=not bulk) if not bulk or self._known_records else None
        votes, new = None, rec is None
        if rec is None:
            rec, votes = _analyze(rel, data)
            stats.parsed += 1
        self._apply(rel, mtime, size, now, old, bulk, digest, rec, votes, False, new)

    def _apply(
        self,
        rel: str,
        mtime: int,
        size: int,
        now: int,
        old: tuple[int, int, str, int] | None,
        bulk: bool,
        digest: str,
        rec: Record,
        votes: dict[str, int] | None,
        counted: bool = False,
        new: bool = True,
    ) -> None:
        """Index one file's new content and count its votes (`counted`: they are, with
        others; `new`: a fresh analysis)."""
        if new:
            self._new_records.append(
                (digest, rec[0], rec[1], rec[3], marshal.dumps(rec[4]), rec[2])
            )
            if not bulk:
                self._remember(digest, rec)
        old_rec = self.record(old[2]) if old is not None else None
        self._set_entry(rel, (mtime, size, digest, now))
        if bulk:
            self._bulk_files[rel] = (rec[4], rec[3])  # what scoring needs, kept until the end
            if len(self._bulk_files) >= _BULK_FILES:
                self._spill()
        else:
            self._changed.add(rel)
        if not counted:
            self._count(old_rec, rec, votes)
        if len(self._new_records) >= 256 or len(self._new_files) >= 1024:
            self._flush_rows()

    def _flush_rows(self) -> None:
        """Write the records and index rows gathered so far (batched: one statement each)."""
        db = self.store.db
        if self._new_records:
            db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)", self._new_records
            )
            self._new_records = []
        if self._new_files:
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", self._new_files)
            self._new_files = []

    def _remove(self, rel: str) -> None:
        entry = self.index[rel]
        self._set_entry(rel, None)
        self._changed.add(rel)
        self._count(self.record(entry[2]), None)

    def flush(self) -> None:
        """Drop records no file uses once there are many (the store is otherwise always
        written: every refresh commits)."""
        with self._lock:
            db = self.store.db
            (count,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
            if count - len(self.index) > _UNUSED_RECORDS:
                db.execute("DELETE FROM records WHERE digest NOT IN (SELECT digest FROM files)")

    def wait_idle(self) -> None:
        """Nothing runs in the background any more; kept for callers that wait."""
