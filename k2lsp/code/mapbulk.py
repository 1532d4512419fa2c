"""A cold repo map build's totals and ranks: computed once at the end of the scan, from
memory for a small repository, from the store in batches for a large one (bounded memory)."""

from __future__ import annotations

import marshal
from collections import Counter
from collections.abc import Iterable

from k2lsp.code.store import Store, chunks, dec, enc


class BulkRank:
    """Mixed into `RepoMap`, which owns the state below."""

    store: Store
    _votes_delta: dict[str, int]
    _defs_delta: Counter[str]
    _bulk_files: dict[str, tuple[tuple[str, ...], bytes]]
    _spilled: bool

    def _flush_rows(self) -> None:
        raise NotImplementedError

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
