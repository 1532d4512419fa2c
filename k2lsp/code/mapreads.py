"""The read side of the repo map: state token, rendering, records, symbols and ranks.

`RepoMap` (repomap.py) keeps the index and the store up to date; these methods only read
them, through the attributes declared here.
"""

from __future__ import annotations

import logging
import marshal
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from k2lsp.code.maprecord import (
    _DECODED_FILES,
    _EMPTY,
    _MOD,
    _RECORDS_KEPT,
    Record,
    _pair_hash,
    rec_symbols,
)
from k2lsp.code.store import Store, dec, enc
from k2lsp.code.symbols import Symbol

log = logging.getLogger("k2lsp.code.repomap")


class MapReads:
    """Queries over the map; mixed into `RepoMap`, which owns the state below."""

    root: Path
    store: Store
    index: dict[str, tuple[int, int, str, int]]
    _records: OrderedDict[str, Record]
    _decoded: OrderedDict[str, tuple[tuple[Any, ...], ...]]
    _lock: threading.RLock
    _token: str | None
    _token_sum: int | None
    _new_files: list[tuple[Any, ...]]
    _gen: int | None
    left_out: int
    total_defs: int

    def _sync(self) -> bool:
        raise NotImplementedError

    def _flush_rows(self) -> None:
        raise NotImplementedError

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
