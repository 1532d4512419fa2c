"""edit_file: exact replacement of text that occurs once, with answers the model can act on in
one step when it does not (closest lines, whitespace-insensitive matches, every duplicate)."""

from __future__ import annotations

import difflib
import heapq
import re
from collections import Counter

from pydantic import Field

from k2lsp.tools import fileops
from k2lsp.tools.base import ToolContext, ToolError, tool

MAX_LISTED = 10
FUZZY_MAX_LINES = 200_000
FUZZY_MIN_RATIO = 0.5
FUZZY_CANDIDATES = 12
_TOKEN = re.compile(r"\w+|[^\w\s]")


class EditFileParams(fileops.Params):
    """Arguments of edit_file."""

    path: str = Field(description="File to edit, relative to the workspace root.")
    old_text: str = Field(
        description="The exact text to replace, with its indentation, copied from the file. It "
        "must occur exactly once: include a few surrounding lines to make it unique."
    )
    new_text: str = Field(description="The text that replaces old_text (empty to delete it).")


@tool("edit_file", EditFileParams, writes="recorded", edits=True)
def edit_file(ctx: ToolContext, args: EditFileParams) -> str:
    """Replace the one occurrence of old_text in a file with new_text. Line endings (CRLF),
    tabs and the file mode are kept; an edit that breaks the file's syntax is refused."""
    abs_path, rel = fileops.confined(ctx, args.path)
    fileops.check_secret(ctx, rel)
    if not args.old_text:
        raise ToolError(
            "old_text is empty; copy an existing line as old_text and repeat it in new_text "
            "together with the new lines (use create_file for a new file)"
        )
    tf = fileops.load_text(ctx, abs_path, rel)
    text = tf.text
    old, new = _fit(tf, text, args.old_text, args.new_text)
    if old == new:
        raise ToolError("old_text and new_text are identical; nothing to change")
    where = _positions(text, old)
    if not where:
        raise ToolError(no_match_message(rel, text, old, new))
    if len(where) > 1:
        raise ToolError(many_matches_message(rel, text, old, where))
    idx = where[0]
    new_full = text[:idx] + new + text[idx + len(old) :]
    disk = tf.to_disk(new_full)
    fileops.gate(ctx, rel, tf.raw, disk)
    fileops.atomic_write(ctx.root, abs_path, disk)
    if rel in ctx.workspace.overlay:
        ctx.workspace.overlay[rel] = disk
    fileops.remember_tree(rel, disk)  # the gate's tree when it parsed; the next edit's lookup
    diff = tf.diff_to(rel, new_full, disk)  # one diff: the event's and the model's
    ctx.record_edit(rel, diff, old=tf.raw, new=disk)
    first = text.count("\n", 0, idx) + 1
    last = first + old.rstrip("\n").count("\n")
    added = fileops.plural(new.rstrip("\n").count("\n") + 1 if new else 0, "line")
    head = f"Edited {rel}: replaced {_span(first, last)} with {added}.\n"
    return head + fileops.compact(diff)


def _span(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _fit(tf: fileops.TextFile, text: str, old: str, new: str) -> tuple[str, str]:
    """old/new in the line-ending form of `text` (CRLF files are edited with LF endings)."""
    if tf.crlf or "\r\n" not in text:
        return old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
    if old not in text:  # mixed endings: try the CRLF spelling of the model's text
        crlf_old = old.replace("\r\n", "\n").replace("\n", "\r\n")
        if crlf_old in text:
            return crlf_old, new.replace("\r\n", "\n").replace("\n", "\r\n")
    return old, new


def _positions(text: str, old: str, limit: int = 50) -> list[int]:
    """Start offsets of `old` in `text`, overlapping ones included, at most `limit`."""
    found: list[int] = []
    idx = text.find(old)
    while idx >= 0 and len(found) < limit:
        found.append(idx)
        idx = text.find(old, idx + 1)
    return found


def numbered(lines: list[str], first: int) -> str:
    """Lines in read_file's `number<TAB>text` form, starting at line `first`."""
    return "\n".join(f"{first + i:>6}\t{line.rstrip(chr(13))}" for i, line in enumerate(lines))


def many_matches_message(rel: str, text: str, old: str, where: list[int]) -> str:
    """Every match's line number with a line of context, and what to do."""
    lines = text.split("\n")
    starts = [text.count("\n", 0, idx) + 1 for idx in where]
    more = "+" if len(where) >= 50 else ""
    listed = ", ".join(map(str, starts[:MAX_LISTED])) + (
        ", ..." if len(starts) > MAX_LISTED else ""
    )
    out = [
        f"old_text matches {len(where)}{more} times in {rel} (at lines {listed}). Nothing was "
        "changed. Add surrounding lines to old_text so that it matches exactly once:"
    ]
    for n in starts[:MAX_LISTED]:
        lo = max(1, n - 1)
        out.append(f"--- match at line {n}:\n" + numbered(lines[lo - 1 : n + 1], lo))
    return "\n".join(out)


def no_match_message(rel: str, text: str, old: str, new: str) -> str:
    """Why nothing matched: a whitespace-insensitive match, else the closest lines, as text."""
    head = f"old_text was not found in {rel}; nothing was changed."
    lines = text.split("\n")
    old_lines = old.split("\n")
    if len(old_lines) > 1 and old_lines[-1] == "":
        old_lines.pop()
    loose = _loose_matches(lines, old_lines)
    if loose:
        n = loose[0]
        others = (
            f" (also at lines {', '.join(str(i + 1) for i in loose[1:4])})"
            if len(loose) > 1
            else ""
        )
        return (
            f"{head} It matches {_span(n + 1, n + len(old_lines))} when whitespace is ignored"
            f"{others}; the indentation, tabs or spaces differ. The exact text there is:\n"
            f"{numbered(lines[n : n + len(old_lines)], n + 1)}\n"
            "Copy it exactly (without the line numbers) into old_text and retry."
        )
    if len(new.strip()) >= 12 and new in text:  # a distinctive new_text, not "x" or "pass"
        line = text.count("\n", 0, text.index(new)) + 1
        return (
            f"{head} new_text is already present at line {line}: "
            "the edit may have been made already."
        )
    close = _closest(lines, old_lines)
    if close is None:
        return f"{head} Nothing similar exists; use read_file or search to see the current text."
    n, ratio = close
    return (
        f"{head} The closest text is {_span(n + 1, n + len(old_lines))} ({ratio:.0%} similar):\n"
        f"{numbered(lines[n : n + len(old_lines)], n + 1)}\n"
        "If that is the place, copy it exactly (without the line numbers) into old_text and retry."
    )


def _squash(line: str) -> str:
    return "".join(line.split())


def _loose_matches(lines: list[str], old_lines: list[str]) -> list[int]:
    """Window starts whose lines equal `old_lines` once all whitespace is removed."""
    keys = [_squash(line) for line in lines]
    want = [_squash(line) for line in old_lines]
    if not any(want):
        return []
    size = len(want)
    hits: list[int] = []
    for i in range(len(keys) - size + 1):
        if size == 1:  # a short fragment must equal the line, a longer one may sit inside it
            ok = want[0] == keys[i] or (len(want[0]) >= 6 and want[0] in keys[i])
        else:
            ok = (
                keys[i].endswith(want[0])
                and keys[i + size - 1].startswith(want[-1])
                and keys[i + 1 : i + size - 1] == want[1:-1]
            )
        if ok:
            hits.append(i)
    return hits


def _closest(lines: list[str], old_lines: list[str]) -> tuple[int, float] | None:
    """Start and similarity of the window of len(old_lines) lines most like old_text.

    Windows are ranked cheaply by the old_text tokens they share, rare tokens counting more
    (prefix sums, linear in the file); only the best few are scored with difflib.
    """
    if len(lines) > FUZZY_MAX_LINES:
        return None
    size = len(old_lines)
    wanted = {tok for line in old_lines for tok in _TOKEN.findall(line)}
    if not wanted:
        return None
    per_line = [[t for t in _TOKEN.findall(line) if t in wanted] for line in lines]
    freq: Counter[str] = Counter(t for toks in per_line for t in toks)
    prefix = [0.0]
    for toks in per_line:
        prefix.append(prefix[-1] + sum(1.0 / freq[t] for t in toks))

    def rank(i: int) -> float:
        return prefix[min(i + size, len(lines))] - prefix[i]

    best: tuple[int, float] | None = None
    for i in sorted(
        heapq.nlargest(FUZZY_CANDIDATES, range(max(1, len(lines) - size + 1)), key=rank)
    ):
        ratio = _similarity(lines[i : i + size], old_lines)
        if ratio >= FUZZY_MIN_RATIO and (best is None or ratio > best[1]):
            best = (i, ratio)
    return best


def _similarity(window: list[str], old_lines: list[str]) -> float:
    """Line-by-line difflib similarity, weighted by line length (fast on long windows)."""
    score = weight = 0.0
    for have, want in zip(window, old_lines, strict=False):
        a, b = have.strip(), want.strip()
        w = max(len(a), len(b), 1)
        score += w * (1.0 if a == b else difflib.SequenceMatcher(None, a, b).ratio())
        weight += w
    missing = len(old_lines) - len(window)  # a window cut short by the end of the file
    weight += (
        sum(max(len(line.strip()), 1) for line in old_lines[len(old_lines) - missing :])
        if missing > 0
        else 0
    )
    return score / weight if weight else 0.0
