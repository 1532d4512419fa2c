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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from sys import intern
from typing import Any

from k2lsp import safefs
from k2lsp.code.cache import content_hash, default_cache_dir
from k2lsp.code.files import list_source_files
from k2lsp.code.languages import language_for
from k2lsp.code.refs import identifier_votes
from k2lsp.code.store import Store, chunks, dec, enc
from k2lsp.code.symbols import Symbol, symbols_of
from k2lsp.errors import PathError

log = logging.getLogger(__name__)

# A file's analysis, kept compact: (symbol tuples, identifier votes, a note, per-symbol (own
# votes, prior), the defined names); all but the note and names are marshalled bytes decoded
# on demand. Stored in the `records` table; only a bounded few are held in memory.
Record = tuple[bytes, bytes, str, bytes, tuple[str, ...]]
_EMPTY = marshal.dumps(())


def rec_symbols(rec: Record) -> tuple[tuple[Any, ...], ...]:
    """The symbol tuples of a record (see `Symbol`)."""
    out: tuple[tuple[Any, ...], ...] = marshal.loads(rec[0])
    return out


def rec_votes(rec: Record) -> dict[str, int]:
    """Identifier -> votes of a record's file."""
    out: dict[str, int] = marshal.loads(rec[1]) if rec[1] != _EMPTY else {}
    return out


def rec_statics(rec: Record) -> tuple[tuple[int, float], ...]:
    """Per symbol: (the file's own votes for its name, its name prior)."""
    out: tuple[tuple[int, float], ...] = marshal.loads(rec[3])
    return out


def _record(syms: tuple[Any, ...], votes: dict[str, int], note: str, statics: tuple) -> Record:
    names = tuple(intern(t[0]) for t in syms)
    votes_blob = marshal.dumps(votes) if votes else _EMPTY
    return marshal.dumps(syms), votes_blob, note, marshal.dumps(statics), names


_MOD = 1 << 128
_DECODED_FILES = 512  # files whose symbols stay decoded (what a few renders show)
_RACY_NS = 2_000_000_000  # mtimes this close to the last check are re-hashed
_MAX_MAP_FILE_BYTES = 1_000_000
_CHARS_PER_TOKEN = 4
_RECORDS_KEPT = 256  # raw records kept in memory (the files one render or edit touches)
_BULK_FILES = 4000  # a cold build keeps totals of this many files in memory, then spills
_UNUSED_RECORDS = 4096  # records of contents no file has any more, kept for a switch back
MAX_FILES = (
    50_000  # a map of more files than this would take minutes to build; the rest is left out
)


def _pair_hash(rel: str, digest: str) -> int:
    return int(content_hash(f"{rel}\0{digest}".encode("utf-8", "surrogatepass")), 16)


def analyze(rel: str, data: bytes) -> Record:
    """Symbols and identifier votes of one file (a note instead when it cannot be read)."""
    return _analyze(rel, data)[0]


def _analyze(rel: str, data: bytes) -> tuple[Record, dict[str, int]]:
    """`analyze` and the identifier votes before marshalling."""
    lang = language_for(rel)
    if lang is None:
        return _record((), {}, "unsupported", ()), {}
    if b"\x00" in data[:8192]:
        return _record((), {}, "binary", ()), {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _record((), {}, "not UTF-8", ()), {}
    if len(data) > _MAX_MAP_FILE_BYTES:
        return _record((), {}, "too large", ()), {}
    from k2lsp.code.rank import name_prior

    # A file an editing tool just wrote was parsed by it: reuse that tree (and keep the symbols
    # with it for the next edit's lookup).
    symbols = symbols_of(lang, data, keep=False)
    # Names repeat across thousands of files: one shared string each (also in the pickles).
    idents = {intern(k): v for k, v in identifier_votes(text).items()}
    statics = tuple((idents.get(s.name, 0), name_prior(s.name, s.kind, s.depth)) for s in symbols)
    syms = tuple((intern(s.name), s.qualname, intern(s.kind), *s[3:]) for s in symbols)
    return _record(syms, idents, "", statics), idents


@dataclass
class RefreshStats:
    """What one refresh did."""

    files: int = 0
    rehashed: int = 0
    parsed: int = 0
    removed: int = 0
    seconds: float = 0.0


class RepoMap:
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

    # ----- keeping up to date -------------------------------------------------------------
    def refresh(self) -> RefreshStats:
        """Bring the map up to date with the files on disk; return what was done."""
        with self._lock:
            try:
                return self._refresh()
            except sqlite3.OperationalError:
                raise  # locked or unwritable: the store itself is fine
            except sqlite3.DatabaseError as exc:  # damaged while in use: start again
                log.warning("repo map store %s failed (%s); rebuilding it", self.store.path, exc)
                self.store.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(str(self.store.path) + suffix).unlink(missing_ok=True)
                self.store = Store(self.cache_dir, self.root)
                self._gen = None
                return self._refresh()

    def _sync(self) -> None:
        """Re-read the index when the store changed under us (another process wrote it)."""
        gen = self.store.meta("gen")
        if gen == self._gen:
            return
        self.index = self.store.load_index()
        self.total_defs = int(self.store.meta("defs") or 0)
        self._gen, self._token, self._token_sum = gen, None, None

    def _refresh(self) -> RefreshStats:
        t0 = time.perf_counter()
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._sync()
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
            self._update(rel, st.st_mtime_ns, st.st_size, now, old, stats, bulk)
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
        votes = None
        if rec is None:
            rec, votes = _analyze(rel, data)
            stats.parsed += 1
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

    def _count(
        self, old: Record | None, new: Record | None, new_votes: dict[str, int] | None = None
    ) -> None:
        """Add the vote and definition changes from `old` to `new` (whose votes may be given
        already decoded) to this refresh's deltas."""
        delta = self._votes_delta
        get = delta.get
        if old is not None:
            for name, votes in rec_votes(old).items():
                delta[name] = get(name, 0) - votes
            self._defs_delta.subtract(old[4])
            self.total_defs -= len(old[4])
        if new is not None:
            for name, votes in (rec_votes(new) if new_votes is None else new_votes).items():
                delta[name] = get(name, 0) + votes
            self._defs_delta.update(new[4])
            self.total_defs += len(new[4])

    def _write_totals(self) -> set[str]:
        """Apply this refresh's deltas to the `names` table; return the names whose score
        inputs changed (defined somewhere before or after, and their votes or count moved)."""
        votes_d = {n: v for n, v in self._votes_delta.items() if v}
        defs_d = {n: d for n, d in self._defs_delta.items() if d}
        names = votes_d.keys() | defs_d.keys()
        current = self.store.totals(names)
        dirty: set[str] = set()
        rows, gone = [], []
        for name in names:
            votes, defs = current.get(name, (0, 0))
            new_votes, new_defs = votes + votes_d.get(name, 0), defs + defs_d.get(name, 0)
            if defs > 0 or new_defs > 0:
                dirty.add(name)
            if new_votes or new_defs:
                rows.append((name, new_votes, new_defs))
            elif name in current:
                gone.append((name,))
        db = self.store.db
        db.executemany("INSERT OR REPLACE INTO names VALUES (?, ?, ?)", rows)
        db.executemany("DELETE FROM names WHERE name = ?", gone)
        return dirty

    def _rerank(self) -> None:
        """Re-score the changed files and the files defining a name whose inputs changed."""
        from k2lsp.code.rank import file_entries

        dirty = self._write_totals()
        files = (self._changed | self.store.files_defining(dirty)) if dirty else self._changed
        db = self.store.db
        db.executemany("DELETE FROM defs WHERE path = ?", [(enc(r),) for r in files])
        for batch in chunks(sorted(r for r in files if r in self.index), 200):
            recs = [(rel, self.record(self.index[rel][2])) for rel in batch]
            totals = self.store.totals(n for _r, rec in recs if rec for n in rec[4])
            rows = []
            for rel, rec in recs:
                if rec is None:
                    continue
                raw = enc(rel)
                for neg, _rel, i in file_entries(rel, rec, totals):
                    rows.append((raw, i, rec[4][i], neg))
            db.executemany("INSERT INTO defs VALUES (?, ?, ?, ?)", rows)

    def _spill(self) -> None:
        """Add a cold build's totals so far to the store and forget them (bounded memory)."""
        self._flush_rows()
        defs = self._defs_delta
        rows = [(n, v, defs.pop(n, 0)) for n, v in self._votes_delta.items()]
        rows += [(n, 0, d) for n, d in defs.items()]
        rows.sort()
        self.store.db.executemany(
            "INSERT INTO names VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "votes = votes + excluded.votes, defs = defs + excluded.defs",
            rows,
        )
        self._votes_delta, self._defs_delta, self._bulk_files = {}, Counter(), {}
        self._spilled = True

    def _bulk_rank(self) -> None:
        """Totals and ranks of every file from scratch (after a cold build). A small
        repository is scored from memory; a large one was spilled to the store as it was
        read and is scored from there in batches."""
        from k2lsp.code.rank import file_entries

        db = self.store.db
        db.execute("DROP INDEX IF EXISTS defs_rank")  # built once at the end: faster
        db.execute("DROP INDEX IF EXISTS defs_name")
        totals: dict[str, tuple[int, int]] = {}
        if not self._spilled:
            defs = {n: d for n, d in self._defs_delta.items() if d > 0}
            rows = [(n, v, defs.get(n, 0)) for n, v in self._votes_delta.items() if v]
            rows += [(n, 0, d) for n, d in defs.items() if not self._votes_delta.get(n)]
            rows.sort()  # in key order: appends to the table's b-tree
            db.executemany("INSERT INTO names VALUES (?, ?, ?)", rows)
            totals = {r[0]: (r[1], r[2]) for r in rows if r[2] > 0}
            del rows
            self._votes_delta, self._defs_delta = {}, Counter()
            files: Iterable[tuple[str, tuple[str, ...], bytes]] = (
                (rel, *self._bulk_files[rel]) for rel in sorted(self._bulk_files)
            )
        else:
            self._spill()
            cur = db.execute(
                "SELECT f.path, r.names, r.statics FROM files f "
                "JOIN records r ON r.digest = f.digest ORDER BY f.path"
            )
            files = ((dec(p), marshal.loads(n), st) for p, n, st in cur)
        for batch in chunks(files, 500):
            if self._spilled:
                totals = self.store.totals(n for _rel, names, _st in batch for n in names)
            out = []
            for rel, names, statics in batch:
                if not names:
                    continue
                raw = enc(rel)
                for neg, _rel, i in file_entries(rel, (b"", b"", "", statics, names), totals):
                    out.append((raw, i, names[i], neg))
            out.sort(key=lambda r: (r[0], r[1]))
            db.executemany("INSERT INTO defs VALUES (?, ?, ?, ?)", out)
        self._bulk_files = {}
        db.execute("CREATE INDEX defs_rank ON defs(neg, path, idx)")
        db.execute("CREATE INDEX defs_name ON defs(name, path)")

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

    def state_token(self) -> str:
        """A digest of which content every file has: equal tokens mean equal maps.

        The sum (mod 2**128) of one hash per (path, content) pair, so it is order-independent
        and kept up to date per changed file instead of re-hashing the whole index.
        """
        if self._token is None:
            if self._token_sum is None:
                self._token_sum = sum(_pair_hash(r, e[2]) for r, e in self.index.items()) % _MOD
            self._token = f"{self._token_sum:032x}"
        return self._token

    def _set_entry(self, rel: str, entry: tuple[int, int, str, int] | None) -> None:
        """Change the index entry of `rel` (None: remove it) in memory and in the store,
        keeping the token sum current."""
        old = self.index.get(rel)
        if entry is None:
            self.index.pop(rel, None)
            self._flush_rows()
            self.store.db.execute("DELETE FROM files WHERE path = ?", (enc(rel),))
        else:
            self.index[rel] = entry
            self._new_files.append((enc(rel), *entry))
        old_digest, new_digest = (old[2] if old else None), (entry[2] if entry else None)
        if old_digest == new_digest:
            return
        self._token = None
        if self._token_sum is not None:
            delta = (_pair_hash(rel, new_digest) if new_digest else 0) - (
                _pair_hash(rel, old_digest) if old_digest else 0
            )
            self._token_sum = (self._token_sum + delta) % _MOD

    def render(
        self,
        max_tokens: int,
        focus_files: frozenset[str] = frozenset(),
        focus_names: frozenset[str] = frozenset(),
        only: tuple[str, ...] = (),
    ) -> str:
        """The map text (see `rank.render_map`), reused from the store when nothing changed."""
        from k2lsp.code.rank import render_map

        with self._lock:
            key = repr((max_tokens, sorted(focus_files), sorted(focus_names), only))
            db = self.store.db
            db.execute("BEGIN")  # one snapshot: another process may commit meanwhile
            try:
                self._sync()
                token = self.state_token()
                row = db.execute(
                    "SELECT text FROM rendered WHERE key = ? AND token = ?", (key, token)
                ).fetchone()
                if row is not None:
                    return str(row[0])
                text = render_map(self, max_tokens, focus_files, focus_names, only)
            finally:
                db.execute("COMMIT")
            self._remember_text(key, token, text)
            return text

    def _remember_text(self, key: str, token: str, text: str) -> None:
        db = self.store.db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM rendered WHERE token != ?", (token,))
            (n,) = db.execute("SELECT COUNT(*) FROM rendered").fetchone()
            if n >= 16:
                db.execute("DELETE FROM rendered")
            db.execute("INSERT OR REPLACE INTO rendered VALUES (?, ?, ?)", (key, token, text))
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # busy or read-only: the text is still right
            if db.in_transaction:
                db.execute("ROLLBACK")
            log.warning("cannot remember the rendered repo map: %s", exc)

    # ----- queries ----------------------------------------------------------------------
    def record(self, digest: str, keep: bool = True) -> Record | None:
        """The record of one content (from memory or the store), or None if unknown."""
        rec = self._records.get(digest)
        if rec is not None:
            self._records.move_to_end(digest)
            return rec
        raw = self.store.record(digest)
        if raw is None:
            return None
        rec = (raw[0], raw[1], raw[2], raw[3], marshal.loads(raw[4]))
        if keep:
            self._remember(digest, rec)
        return rec

    def _remember(self, digest: str, rec: Record) -> None:
        self._records[digest] = rec
        if len(self._records) > _RECORDS_KEPT:
            self._records.popitem(last=False)

    def symbol_tuples(self, digest: str) -> tuple[tuple[Any, ...], ...]:
        """Decoded symbol tuples of a record, the most recently used few kept decoded."""
        hit = self._decoded.get(digest)
        if hit is not None:
            self._decoded.move_to_end(digest)
            return hit
        rec = self.record(digest)
        syms = rec_symbols(rec) if rec is not None else ()
        self._decoded[digest] = syms
        if len(self._decoded) > _DECODED_FILES:
            self._decoded.popitem(last=False)
        return syms

    def symbol_tuples_many(self, digests: Iterable[str]) -> dict[str, tuple[tuple[Any, ...], ...]]:
        """Decoded symbol tuples of several records (one query for those not in memory)."""
        out: dict[str, tuple[tuple[Any, ...], ...]] = {}
        missing = []
        for digest in digests:
            hit = self._decoded.get(digest)
            if hit is None:
                missing.append(digest)
            else:
                out[digest] = hit
        for digest, raw in self.store.symbols_many(missing).items():
            syms = out[digest] = marshal.loads(raw)
            self._decoded[digest] = syms
            if len(self._decoded) > _DECODED_FILES:
                self._decoded.popitem(last=False)
        return out

    def symbols(self, rel: str) -> list[Symbol]:
        """Cached definitions of one file (call refresh first)."""
        entry = self.index.get(rel)
        return [Symbol(*t) for t in self.symbol_tuples(entry[2])] if entry else []

    def files(self) -> list[str]:
        """Files in the map, sorted."""
        return sorted(self.index)

    def def_count(self, name: str) -> int:
        """How many definitions of `name` the repository has."""
        with self._lock:
            return self.store.totals([name]).get(name, (0, 0))[1]

    def defined_names(self) -> list[str]:
        """Every defined name, sorted."""
        with self._lock:
            rows = self.store.db.execute("SELECT name FROM names WHERE defs > 0 ORDER BY name")
            return [r[0] for r in rows]

    def totals(self) -> dict[str, tuple[int, int]]:
        """name -> (votes over every file, definitions) for every name (tests, debugging)."""
        rows = self.store.db.execute("SELECT name, votes, defs FROM names")
        return {n: (v, d) for n, v, d in rows}

    def definitions(self, name: str) -> list[tuple[str, Symbol]]:
        """(file, symbol) of every definition whose name or qualified name is `name`."""
        with self._lock:
            out = []
            for rel in sorted(self.store.files_defining([name.rsplit(".", 1)[-1]])):
                entry = self.index.get(rel)
                for t in self.symbol_tuples(entry[2]) if entry else ():
                    if t[0] == name or t[1] == name or t[1].endswith("." + name):
                        out.append((rel, Symbol(*t)))
            return out

    def referring_files(self, name: str) -> list[str]:
        """Files whose text mentions `name` as an identifier (streams every record)."""
        with self._lock:
            out = []
            rows = self.store.db.execute(
                "SELECT f.path, r.votes FROM files f JOIN records r ON r.digest = f.digest"
            )
            for raw, votes in rows:
                if votes != _EMPTY and name in marshal.loads(votes):
                    out.append(dec(raw))
            return sorted(out)

    def ranked(
        self, focus_files: frozenset[str] = frozenset(), focus_names: frozenset[str] = frozenset()
    ) -> list[tuple[float, str, Symbol]]:
        """Every definition with its score, best first (deterministic order)."""
        from k2lsp.code.rank import rank_symbols

        return rank_symbols(self, focus_files, focus_names)
