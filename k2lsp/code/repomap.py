"""The repository map: a ranked, token-budgeted outline of the definitions in a repository.

Definitions are ranked by how often other files mention their name (a one-step PageRank:
each referring file votes with the square root of its mention count, split between all
definitions of that name), boosted for files and identifiers the task mentions. Per-file
analysis is cached on disk by content hash and refreshed incrementally: a file is re-read
only when its size or mtime changed (or its mtime is too recent to trust) and re-parsed only
when its content hash changed, so the map is never stale.
"""

from __future__ import annotations

import logging
import marshal
import os
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from sys import intern
from typing import Any

from k2lsp.code.cache import DiskCache, content_hash, default_cache_dir
from k2lsp.code.files import list_source_files
from k2lsp.code.languages import language_for
from k2lsp.code.refs import identifier_votes
from k2lsp.code.symbols import Symbol, extract_symbols

log = logging.getLogger(__name__)

# A file's analysis, kept compact (millions of small tuples would not fit a 10,000-file map in
# memory): (symbol tuples, identifier votes, per-symbol (own votes, prior)) each marshalled to
# bytes and decoded on demand, a note, and the defined names (interned, shared across files).
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
_BLOB_FLUSH = 64
MAX_FILES = (
    50_000  # a map of more files than this would take minutes to build; the rest is left out
)


def _pair_hash(rel: str, digest: str) -> int:
    return int(content_hash(f"{rel}\0{digest}".encode("utf-8", "surrogatepass")), 16)


def analyze(rel: str, data: bytes) -> Record:
    """Symbols and identifier votes of one file (a note instead when it cannot be read)."""
    lang = language_for(rel)
    if lang is None:
        return _record((), {}, "unsupported", ())
    if b"\x00" in data[:8192]:
        return _record((), {}, "binary", ())
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _record((), {}, "not UTF-8", ())
    if len(data) > _MAX_MAP_FILE_BYTES:
        return _record((), {}, "too large", ())
    from k2lsp.code.rank import name_prior

    symbols = extract_symbols(lang, data)
    # Names repeat across thousands of files: one shared string each (also in the pickles).
    idents = {intern(k): v for k, v in identifier_votes(text).items()}
    statics = tuple((idents.get(s.name, 0), name_prior(s.name, s.kind, s.depth)) for s in symbols)
    syms = tuple((intern(s.name), s.qualname, intern(s.kind), *s[3:]) for s in symbols)
    return _record(syms, idents, "", statics)


@dataclass
class RefreshStats:
    """What one refresh did."""

    files: int = 0
    rehashed: int = 0
    parsed: int = 0
    removed: int = 0
    seconds: float = 0.0


class RepoMap:
    """In-memory map of one root, kept in sync with the disk and the on-disk cache."""

    def __init__(
        self, root: Path, cache_dir: Path | None = None, files: list[str] | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self._root_str = str(self.root)
        self.cache = DiskCache(cache_dir or default_cache_dir(), self.root)
        self.fixed_files = files
        self.index: dict[str, tuple[int, int, str, int]] = {}
        self.records: dict[str, Record] = {}
        self.refsum: dict[str, int] = {}
        self.allvotes: dict[str, int] = {}
        self._decoded: OrderedDict[str, tuple[tuple[Any, ...], ...]] = OrderedDict()
        self.defcount: dict[str, int] = {}
        self.rank_cache: dict[str, Any] = {}  # rank.py's per-file scored entries
        # rank.py's entries of every file, best first (a ChunkedSortedList once ranked)
        self.rank_sorted: Any = []
        self._dirty: set[str] = set()
        self._dirty_all = True
        self._bulk = False
        self.left_out = 0
        self._loaded = False
        self._unsaved = 0
        self._pack_records = 0
        self._token: str | None = None
        self._token_sum: int | None = None
        self.total_defs = 0
        self._rendered_token = ""
        self._rendered: dict[str, str] = {}
        self._lock = threading.RLock()
        self._primer: threading.Thread | None = None
        self._saver: threading.Thread | None = None

    # ----- keeping up to date -------------------------------------------------------------
    def _load(self) -> None:
        pack = self.cache.load_pack()
        self._loaded = True
        if not pack or any(e[2] not in pack["records"] for e in pack["index"].values()):
            return
        self.index, self.records = pack["index"], pack["records"]
        self.refsum, self.defcount = pack["refsum"], pack["defcount"]
        self.allvotes = pack["allvotes"]
        self.total_defs = sum(self.defcount.values())
        self._token, self._token_sum = None, None
        self._pack_records = len(self.index)

    def refresh(self) -> RefreshStats:
        """Bring the map up to date with the files on disk; return what was done."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> RefreshStats:
        t0 = time.perf_counter()
        if not self._loaded:
            self._load()
        stats = RefreshStats()
        self._bulk = not self.index  # cold: rebuild the totals once at the end
        paths = self.fixed_files if self.fixed_files is not None else list_source_files(self.root)
        self.left_out = max(0, len(paths) - MAX_FILES)
        paths = paths[:MAX_FILES]
        now = time.time_ns()
        root_str = str(self.root)
        seen: set[str] = set()
        new_blobs: list[str] = []
        for rel in paths:
            try:
                st = os.stat(os.path.join(root_str, rel))
            except OSError:
                continue
            seen.add(rel)
            old = self.index.get(rel)
            if (
                old is not None
                and old[0] == st.st_mtime_ns
                and old[1] == st.st_size
                and old[3] - old[0] > _RACY_NS
            ):
                continue
            self._update(rel, st.st_mtime_ns, st.st_size, now, old, stats, new_blobs)
        for rel in [r for r in self.index if r not in seen]:
            self._remove(rel)
            stats.removed += 1
        stats.files = len(seen)
        if self._bulk:
            self._rebuild_totals()
            self._bulk = False
        self._persist(stats, new_blobs)
        stats.seconds = time.perf_counter() - t0
        return stats

    def _update(
        self,
        rel: str,
        mtime: int,
        size: int,
        now: int,
        old: tuple[int, int, str, int] | None,
        stats: RefreshStats,
        new_blobs: list[str],
    ) -> None:
        try:
            with open(os.path.join(self._root_str, rel), "rb") as fh:
                data = fh.read()
        except OSError:
            return
        stats.rehashed += 1
        digest = content_hash(data)
        if old is not None and old[2] == digest:
            self._set_entry(rel, (mtime, size, digest, now))
            return
        rec = self.records.get(digest) or self.cache.load_blob(digest)
        if rec is None:
            rec = analyze(rel, data)
            stats.parsed += 1
            new_blobs.append(digest)
        old_rec = self.records.get(old[2]) if old is not None else None
        self.records[digest] = rec
        self._set_entry(rel, (mtime, size, digest, now))
        if self._bulk:
            return  # totals are rebuilt once at the end of the refresh
        self._apply(old_rec, rec)

    # Vote totals. Invariants: `allvotes` holds every identifier's votes summed over all files;
    # `refsum` holds exactly the names defined somewhere (defcount > 0) with their `allvotes`.
    def _rebuild_totals(self) -> None:
        """Totals from scratch (after a cold build), one file decoded at a time."""
        recs = [self.records[e[2]] for e in self.index.values() if e[2] in self.records]
        defcount: Counter[str] = Counter()
        allvotes: dict[str, int] = {}
        get = allvotes.get
        for rec in recs:
            defcount.update(rec[4])
            for name, votes in rec_votes(rec).items():
                allvotes[name] = get(name, 0) + votes
        self.allvotes = allvotes
        self.defcount = dict(defcount)
        self.refsum = {name: get(name, 0) for name in defcount}
        self.total_defs = sum(defcount.values())
        self._dirty, self._dirty_all = set(), True

    def _apply(self, old: Record | None, new: Record | None) -> None:
        """Change the totals from one version of a file to another (None: absent)."""
        refsum, defcount, dirty, allvotes = self.refsum, self.defcount, self._dirty, self.allvotes
        empty: dict[str, int] = {}
        old_i, new_i = rec_votes(old) if old else empty, rec_votes(new) if new else empty
        for name in old_i.keys() | new_i.keys() if old and new else (old_i or new_i):
            change = new_i.get(name, 0) - old_i.get(name, 0)
            if not change:
                continue
            total = allvotes.get(name, 0) + change
            if total:
                allvotes[name] = total
            else:
                allvotes.pop(name, None)
            if name in refsum:
                refsum[name] += change
                dirty.add(name)
        old_names, new_names = (old[4] if old else ()), (new[4] if new else ())
        self.total_defs += len(new_names) - len(old_names)
        old_d, new_d = Counter(old_names), Counter(new_names)
        for name in old_d.keys() | new_d.keys():
            change = new_d[name] - old_d[name]
            if not change:
                continue
            dirty.add(name)
            count = defcount.get(name, 0) + change
            if count > 0:
                defcount[name] = count
                if name not in refsum:  # newly defined: every file's votes for it
                    refsum[name] = allvotes.get(name, 0)
            else:
                defcount.pop(name, None)
                refsum.pop(name, None)
        if len(dirty) > 50_000:
            self._dirty, self._dirty_all = set(), True

    def _remove(self, rel: str) -> None:
        entry = self.index[rel]
        self._set_entry(rel, None)
        rec = self.records.get(entry[2])
        if rec is not None and not self._bulk:
            self._apply(rec, None)

    def take_dirty(self) -> tuple[set[str], bool]:
        """Names whose votes changed since the last call (or True: everything changed)."""
        dirty, dirty_all = self._dirty, self._dirty_all
        self._dirty, self._dirty_all = set(), False
        return dirty, dirty_all

    def _persist(self, stats: RefreshStats, new_blobs: list[str]) -> None:
        changed = stats.parsed + stats.removed + stats.rehashed
        if not changed:
            return
        if stats.parsed or stats.removed or stats.rehashed:
            self._token = None
        self._unsaved += changed
        if self._pack_records == 0 or self._unsaved > _BLOB_FLUSH or stats.parsed > _BLOB_FLUSH:
            self._save_pack()
            self._pack_records = len(self.index)
            self._unsaved = 0
            return
        for digest in new_blobs:
            self.cache.save_blob(digest, self.records[digest])

    def flush(self) -> None:
        """Write the whole pack now (e.g. at the end of a run)."""
        if self._unsaved:
            self._save_pack()
            self._unsaved = 0
        self._join_saver()

    def _save_pack(self) -> None:
        """Write the pack from a snapshot in a background thread (joined by `flush`/exit)."""
        self._join_saver()
        totals = {
            "refsum": dict(self.refsum),
            "defcount": dict(self.defcount),
            "allvotes": dict(self.allvotes),
        }
        snapshot = (dict(self.index), dict(self.records), totals)
        self._saver = threading.Thread(
            target=self.cache.save_pack, args=snapshot, name="k2lsp-repomap-save", daemon=False
        )
        self._saver.start()

    def _join_saver(self) -> None:
        if self._saver is not None:
            self._saver.join()
            self._saver = None

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
        """Change the index entry of `rel` (None: remove it), keeping the token sum current."""
        old = self.index.get(rel)
        if entry is None:
            self.index.pop(rel, None)
        else:
            self.index[rel] = entry
        old_digest, new_digest = (old[2] if old else None), (entry[2] if entry else None)
        if old_digest == new_digest:
            return
        self._token = None
        if self._token_sum is not None:
            delta = (_pair_hash(rel, new_digest) if new_digest else 0) - (
                _pair_hash(rel, old_digest) if old_digest else 0
            )
            self._token_sum = (self._token_sum + delta) % _MOD

    def _prime(self) -> None:
        from k2lsp.code.rank import rank_symbols

        with self._lock:
            if not self.rank_cache:
                rank_symbols(self, frozenset(), frozenset(), 0)

    def wait_idle(self) -> None:
        """Wait for background work (ranking after a cache hit, cache writes)."""
        if self._primer is not None:
            self._primer.join()
        self._join_saver()

    def render(
        self,
        max_tokens: int,
        focus_files: frozenset[str] = frozenset(),
        focus_names: frozenset[str] = frozenset(),
        only: tuple[str, ...] = (),
    ) -> str:
        """The map text (see `rank.render_map`), reused from the disk cache when nothing changed."""
        with self._lock:
            return self._render(max_tokens, focus_files, focus_names, only)

    def _render(
        self,
        max_tokens: int,
        focus_files: frozenset[str],
        focus_names: frozenset[str],
        only: tuple[str, ...],
    ) -> str:
        from k2lsp.code.rank import render_map

        key = repr((max_tokens, sorted(focus_files), sorted(focus_names), only))
        token = self.state_token()
        if self._rendered_token != token:
            self._rendered = self.cache.load_rendered(token)
            self._rendered_token = token
        text = self._rendered.get(key)
        if text is not None and not self.rank_cache and self._primer is None:
            # Served from disk: rank in the background so the next (edited) map is quick.
            self._primer = threading.Thread(
                target=self._prime, name="k2lsp-repomap-prime", daemon=True
            )
            self._primer.start()
        if text is None:
            text = render_map(self, max_tokens, focus_files, focus_names, only)
            self._rendered[key] = text
            if len(self._rendered) > 16:
                self._rendered.pop(next(iter(self._rendered)))
            self.cache.save_rendered(token, self._rendered)
        return text

    # ----- queries ----------------------------------------------------------------------
    def symbol_tuples(self, digest: str) -> tuple[tuple[Any, ...], ...]:
        """Decoded symbol tuples of a record, the most recently used few kept decoded."""
        hit = self._decoded.get(digest)
        if hit is not None:
            self._decoded.move_to_end(digest)
            return hit
        rec = self.records.get(digest)
        syms = rec_symbols(rec) if rec is not None else ()
        self._decoded[digest] = syms
        if len(self._decoded) > _DECODED_FILES:
            self._decoded.popitem(last=False)
        return syms

    def symbols(self, rel: str) -> list[Symbol]:
        """Cached definitions of one file (call refresh first)."""
        entry = self.index.get(rel)
        rec = self.records.get(entry[2]) if entry else None
        return [Symbol(*t) for t in rec_symbols(rec)] if rec else []

    def files(self) -> list[str]:
        """Files in the map, sorted."""
        return sorted(self.index)

    def definitions(self, name: str) -> list[tuple[str, Symbol]]:
        """(file, symbol) of every definition whose name or qualified name is `name`."""
        out = []
        for rel in sorted(self.index):
            rec = self.records.get(self.index[rel][2])
            if rec is None or name.rsplit(".", 1)[-1] not in rec[4]:
                continue
            for t in rec_symbols(rec):
                if t[0] == name or t[1] == name or t[1].endswith("." + name):
                    out.append((rel, Symbol(*t)))
        return out

    def referring_files(self, name: str) -> list[str]:
        """Files whose text mentions `name` as an identifier."""
        out = []
        for rel in sorted(self.index):
            rec = self.records.get(self.index[rel][2])
            if rec is not None and name in rec_votes(rec):
                out.append(rel)
        return out

    def ranked(
        self, focus_files: frozenset[str] = frozenset(), focus_names: frozenset[str] = frozenset()
    ) -> list[tuple[float, str, Symbol]]:
        """Every definition with its score, best first (deterministic order)."""
        from k2lsp.code.rank import rank_symbols

        return rank_symbols(self, focus_files, focus_names)
