"""A sorted list in chunks: insert and remove cost O(log n + chunk), not a move of n items.

What the repository map keeps its ranking in (hundreds of thousands of entries, a few hundred
moved per edit). Items must be comparable and distinct.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

_CHUNK = 1000


class ChunkedSortedList:
    """Sorted chunks of at most 2 * `_CHUNK` items and the last item of each chunk."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        ordered = sorted(items)
        self._chunks = [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]
        self._maxes = [c[-1] for c in self._chunks]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._chunks:
            yield from chunk

    def add(self, item: Any) -> None:
        """Insert `item` in order."""
        if not self._chunks:
            self._chunks, self._maxes = [[item]], [item]
        else:
            k = min(bisect.bisect_left(self._maxes, item), len(self._chunks) - 1)
            chunk = self._chunks[k]
            bisect.insort(chunk, item)
            self._maxes[k] = chunk[-1]
            if len(chunk) > 2 * _CHUNK:
                self._chunks[k : k + 1] = [chunk[:_CHUNK], chunk[_CHUNK:]]
                self._maxes[k : k + 1] = [chunk[_CHUNK - 1], chunk[-1]]
        self._len += 1

    def discard(self, item: Any) -> None:
        """Remove `item` if present."""
        k = bisect.bisect_left(self._maxes, item)
        if k == len(self._chunks):
            return
        chunk = self._chunks[k]
        i = bisect.bisect_left(chunk, item)
        if i == len(chunk) or chunk[i] != item:
            return
        del chunk[i]
        self._len -= 1
        if chunk:
            self._maxes[k] = chunk[-1]
        else:
            del self._chunks[k], self._maxes[k]
