"""The chunked sorted list behaves like a sorted Python list under any adds and removals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from k2lsp.code import sortedlist
from k2lsp.code.sortedlist import ChunkedSortedList


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 3000), unique=True, max_size=300),
    st.lists(st.tuples(st.booleans(), st.integers(0, 3000)), max_size=400),
)
def test_matches_a_sorted_list(start: list[int], ops: list[tuple[bool, int]]) -> None:
    sortedlist._CHUNK = 4  # small chunks: splits and empty chunks happen often
    try:
        got = ChunkedSortedList(start)
        want = sorted(start)
        for add, value in ops:
            if add and value not in want:
                got.add(value)
                want.append(value)
                want.sort()
            elif not add:
                got.discard(value)
                if value in want:
                    want.remove(value)
        assert list(got) == want and len(got) == len(want)
    finally:
        sortedlist._CHUNK = 1000
