"""The hunks of a review: any subset applies on its own, and the saved patch of the rest applies
to the text after the accepted ones (k2lsp.server.hunks, pure functions)."""

from __future__ import annotations

import itertools

import pytest

from k2lsp.server.hunks import ACCEPTED, REJECTED, FileReview, patch_of, split
from k2lsp.tools.patch import apply_hunks, normalize_patch

BASE = "a\nb\nc\nd\ne\nf\n"
CASES = {
    "replace, insert, delete": "a\nB\nc\nnew\nd\nf\n",
    "insert at the top and the end": "top\na\nb\nc\nd\ne\nf\nend\n",
    "no final newline": "a\nb\nc\nd\ne\nF",
    "two hunks side by side": "a\nB\nC\nd\ne\nf\n",
}


def _review(target: str) -> FileReview:
    f = FileReview("x.txt", "file:///x.txt", "modified", BASE, target)
    f.hunks = split(BASE, target, 1)
    return f


@pytest.mark.parametrize("target", CASES.values(), ids=CASES.keys())
def test_every_subset_of_hunks_applies_and_the_rest_patches_to_the_target(target: str) -> None:
    import unidiff

    f = _review(target)
    assert f.hunks and [h.id for h in f.hunks] == list(range(1, len(f.hunks) + 1))
    assert f.text_with(()) == BASE
    for h in f.hunks:
        h.state = ACCEPTED
    assert f.text_with((ACCEPTED,)) == target
    for n in range(len(f.hunks) + 1):
        for chosen in itertools.combinations(f.hunks, n):
            for h in f.hunks:
                h.state = ACCEPTED if h in chosen else REJECTED
            now = f.text_with((ACCEPTED,))
            rest = patch_of([f], (REJECTED,))
            if n == len(f.hunks):
                assert rest == "" and now == target
                continue
            (pf,) = unidiff.PatchSet(normalize_patch(rest))
            patched, _notes, failures = apply_hunks(now, list(pf), "x.txt")
            assert failures == [] and patched == target, (chosen, rest)


def test_line_endings_of_the_proposal_are_kept() -> None:
    f = FileReview("x.txt", "file:///x.txt", "modified", "a\r\nb\r\n", "a\r\nB\r\n")
    f.hunks = split("a\r\nb\r\n", "a\r\nB\r\n", 1)
    f.hunks[0].state = ACCEPTED
    assert f.text_with((ACCEPTED,)) == "a\r\nB\r\n"


def test_payload_lines_have_no_endings_and_say_where() -> None:
    (h,) = split("x\ny\r\nz\n", "x\nY\r\nz\n", 7)
    assert h.payload() == {
        "id": 7,
        "start": 1,
        "oldLines": ["y"],
        "newLines": ["Y"],
        "state": "pending",
    }
