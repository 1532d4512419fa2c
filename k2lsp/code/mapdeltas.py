"""An incremental refresh's totals and ranks: the vote and definition-count changes of the
files it re-read, applied to the store's `names`, and the files whose scores they move
re-scored (a cold build's are computed at once, `mapbulk.py`)."""

from __future__ import annotations

from collections import Counter

from k2lsp.code.maprecord import Record, rec_votes
from k2lsp.code.store import Store, chunks, enc


class MapDeltas:
    """Mixed into `RepoMap`, which owns the state below."""

    store: Store
    index: dict[str, tuple[int, int, str, int]]
    total_defs: int
    _votes_delta: dict[str, int]
    _defs_delta: Counter[str]
    _changed: set[str]

    def record(self, digest: str, keep: bool = True) -> Record | None:
        raise NotImplementedError

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

    def _count_sums(self, votes: dict[str, int], defs: dict[str, int]) -> None:
        """Add new files' summed votes and definitions (a cold build's worker chunk)."""
        delta = self._votes_delta
        get = delta.get
        for name, n in votes.items():
            delta[name] = get(name, 0) + n
        self._defs_delta.update(defs)
        self.total_defs += sum(defs.values())

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
