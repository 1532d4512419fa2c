"""Ranking definitions and rendering the token-budgeted repository map text."""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from k2lsp.code.repomap import Record, rec_statics, rec_votes
from k2lsp.code.symbols import Symbol

if TYPE_CHECKING:
    from k2lsp.code.repomap import RepoMap

CHARS_PER_TOKEN = 4
_FOCUS_FILE_BOOST = 5.0
_FOCUS_REF_BOOST = 4.0
_FOCUS_NAME_BOOST = 10.0
_FOCUS_MAX_DEFS = 5
_PRIVATE_FACTOR = 0.3
_NESTED_FACTOR = 0.5
_BASE = 0.05
_TEST_FACTOR = 0.3
_TESTISH = re.compile(
    r"(^|/)(tests?|testing|__tests__|spec)/|(^|/)test_[^/]*$|_test\.[a-z]+$|\.(test|spec)\.[a-z]+$"
)
_DOC_KINDS = frozenset({"class", "interface", "struct", "trait", "enum", "namespace", "module"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_PATHLIKE = re.compile(r"[\w./-]+\.[A-Za-z0-9+]+")


def name_prior(name: str, kind: str, depth: int) -> float:
    """Prior on how useful a definition is in a map, from its name and shape alone."""
    factor = 1.0
    core = name.strip("_")
    if len(core) <= 2:
        factor *= 0.05
    elif len(core) >= 8 and ("_" in core or any(c.isupper() for c in core[1:])):
        factor *= 3.0
    if name.startswith("_") and not name.endswith("__"):
        factor *= _PRIVATE_FACTOR
    if depth > 0 and kind == "function":
        factor *= _NESTED_FACTOR
    return factor


Entry = tuple[float, str, int]  # -score, file, index of the symbol in the file's record
Totals = dict[str, tuple[int, int]]  # name -> (votes over every file, definitions)


def file_entries(
    rel: str,
    rec: Record,
    totals: Totals,
    focus: _Focus | None = None,
    quals: list[str] | None = None,
) -> list[Entry]:
    """Scored entries of one file's definitions, best first (`totals` must hold its names;
    `quals`, the qualified names, are needed when the focus names definitions)."""
    file_factor = _TEST_FACTOR if _TESTISH.search(rel) else 1.0
    if focus is not None and rel in focus.files:
        file_factor *= _FOCUS_FILE_BOOST
    out = []
    for i, (name, (own, prior)) in enumerate(zip(rec[4], rec_statics(rec), strict=True)):
        refsum, ndefs = totals.get(name, (0, 1))
        votes: float = refsum - own
        if focus is not None:
            votes += focus.refs.get(name, 0)
        ndefs = ndefs or 1
        score = (_BASE + (votes / 1000.0 if votes > 0 else 0.0)) * prior * file_factor / ndefs
        if ndefs > 5:
            score *= 0.1
        if (
            quals is not None
            and focus is not None
            and (name in focus.names or quals[i] in focus.names)
        ):
            score *= _FOCUS_NAME_BOOST
        out.append((-score, rel, i))
    out.sort()
    return out


class _Focus:
    """What a focus boosts: the focus files, the names given, and the definitions the focus
    files mention, when the name is specific (defined in at most `_FOCUS_MAX_DEFS` places: a
    mention of a name defined all over the repository does not say which one is meant)."""

    def __init__(self, rmap: RepoMap, files: frozenset[str], names: frozenset[str]) -> None:
        self.files, self.names = files, names
        self.refs: dict[str, float] = {}
        for rel in sorted(files):
            entry = rmap.index.get(rel)
            rec = rmap.record(entry[2]) if entry else None
            if rec is None:
                continue
            votes = rec_votes(rec)
            totals = rmap.store.totals(votes)
            for name, count in votes.items():
                if 0 < totals.get(name, (0, 0))[1] <= _FOCUS_MAX_DEFS:
                    self.refs[name] = self.refs.get(name, 0) + _FOCUS_REF_BOOST * count


def focused_entries(rmap: RepoMap, focus: _Focus) -> tuple[set[str], list[Entry]]:
    """The files a focus re-scores (focus files, files defining a boosted name) and their
    entries, sorted."""
    touched = set(focus.refs) | {n.rsplit(".", 1)[-1] for n in focus.names}
    hit = {rel for rel in focus.files if rel in rmap.index} | rmap.store.files_defining(touched)
    recs = {rel: rmap.record(rmap.index[rel][2]) for rel in hit if rel in rmap.index}
    totals = rmap.store.totals(n for rec in recs.values() if rec for n in rec[4])
    out: list[Entry] = []
    for rel, rec in recs.items():
        if rec is None or not rec[4]:
            continue
        quals = [t[1] for t in rmap.symbol_tuples(rmap.index[rel][2])] if focus.names else None
        out += file_entries(rel, rec, totals, focus, quals)
    out.sort()
    return hit, out


def rank_symbols(
    rmap: RepoMap,
    focus_files: frozenset[str],
    focus_names: frozenset[str],
    limit: int | None = None,
    only: tuple[str, ...] = (),
    decoded: dict[str, tuple[tuple[Any, ...], ...]] | None = None,
) -> list[tuple[float, str, Symbol]]:
    """(score, file, symbol) of the best `limit` definitions (all when None), best first.

    Unfocused scores are kept in the store in rank order (updated per edit by the refresh);
    a focus re-scores only the focus files and the files defining a name it boosts, merged
    with the stored order of every other file. `only` keeps files at or under those paths.
    """
    rows = rmap.store.ranked_rows(only)
    try:
        if focus_files or focus_names:
            hit, focused = focused_entries(rmap, _Focus(rmap, focus_files, focus_names))
            if only:
                focused = [e for e in focused if _under(e[1], only)]
            rest = (e for e in rows if e[1] not in hit)
            merged: Iterable[Entry] = heapq.merge(focused, rest)
        else:
            merged = rows
        best = list(itertools.islice(merged, limit)) if limit is not None else list(merged)
    finally:
        rows.close()
    index = rmap.index
    by_digest = rmap.symbol_tuples_many({index[rel][2] for _n, rel, _i in best})
    if decoded is not None:
        decoded.update((rel, by_digest[index[rel][2]]) for _n, rel, _i in best)
    return [(-neg, rel, Symbol(*by_digest[index[rel][2]][i])) for neg, rel, i in best]


def _under(rel: str, only: tuple[str, ...]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in only)


def _line(sym: Symbol, with_doc: bool) -> str:
    text = f"{sym.start_line:>6} {'  ' * sym.depth}{sym.signature}"
    if with_doc and sym.doc:
        doc = sym.doc if len(sym.doc) <= 70 else sym.doc[:67] + "..."
        text += f"  # {doc}"
    return text


def _ancestors(
    syms: tuple[tuple[Any, ...], ...],
    rel: str,
    qualname: str,
    shown: dict[str, Symbol],
    cache: dict[str, dict[str, tuple]],
) -> list[Symbol]:
    """Enclosing definitions of `qualname` not shown yet (outermost last)."""
    quals = cache.get(rel)
    if quals is None:
        quals = {t[1]: t for t in reversed(syms)}
        cache[rel] = quals
    out = []
    while "." in qualname:
        qualname = qualname.rsplit(".", 1)[0]
        anc = quals.get(qualname)
        if anc is not None and anc[1] not in shown:
            out.append(Symbol(*anc))
    return out


def render_map(
    rmap: RepoMap,
    max_tokens: int,
    focus_files: frozenset[str] = frozenset(),
    focus_names: frozenset[str] = frozenset(),
    only: tuple[str, ...] = (),
) -> str:
    """The map text within about `max_tokens` tokens (4 characters per token)."""
    # Every line costs more than 12 characters and the loop below stops after 40 misses, so
    # the best `limit` entries are all it can use.
    limit = max_tokens * CHARS_PER_TOKEN // 12 + 200
    decoded: dict[str, tuple[tuple[Any, ...], ...]] = {}
    ranked = rank_symbols(rmap, focus_files, focus_names, limit, only, decoded)
    if only:
        ranked = [r for r in ranked if _under(r[1], only)]
    budget = max_tokens * CHARS_PER_TOKEN
    chosen: dict[str, dict[str, Symbol]] = {}
    file_order: list[str] = []
    used = 0
    misses = 0
    by_qual_cache: dict[str, dict[str, tuple]] = {}
    for _score, rel, sym in ranked:
        lines = chosen.get(rel)
        extra: list[Symbol] = []
        cost = 0
        if lines is None:
            cost += len(rel) + 2
            lines = {}
        if sym.qualname in lines:
            continue
        if "." in sym.qualname:
            extra = _ancestors(decoded[rel], rel, sym.qualname, lines, by_qual_cache)
        for s in [*extra, sym]:
            cost += len(_line(s, s.kind in _DOC_KINDS)) + 1
        if used + cost > budget:
            misses += 1
            if misses > 40:
                break
            continue
        used += cost
        if rel not in chosen:
            chosen[rel] = lines
            file_order.append(rel)
        for s in [*extra, sym]:
            lines[s.qualname] = s
    return _format(rmap, chosen, file_order, bool(only))


def _format(
    rmap: RepoMap, chosen: dict[str, dict[str, Symbol]], file_order: list[str], limited: bool
) -> str:
    """The map text: a header line, then each file with its chosen definitions in file order."""
    total_defs = rmap.total_defs
    shown = sum(len(v) for v in chosen.values())
    out = [
        f"Repository map: {shown} of {total_defs} definitions in {len(chosen)} of "
        f"{len(rmap.index)} files, most referenced first (line numbers on the left; "
        "read_file shows bodies, find_symbol finds uses)."
    ]
    if rmap.left_out:
        out.append(f"({rmap.left_out} more source files were left out; use search for those)")
    for rel in file_order:
        out.append(f"{rel}:")
        for s in sorted(chosen[rel].values(), key=lambda s: (s.start_byte, -s.end_byte)):
            out.append(_line(s, s.kind in _DOC_KINDS))
    if shown == 0:
        where = " under the given paths" if limited else ""
        out.append(
            f"(no definitions found{where}; the map covers Python, JavaScript, TypeScript/TSX, Go, "
            "Rust, Java, C and C++ files: use list_files and search for others)"
        )
    return "\n".join(out) + "\n"


def mentions(text: str, rmap: RepoMap) -> tuple[frozenset[str], frozenset[str]]:
    """Files and defined names a task text mentions (paths or basenames; identifiers)."""
    files: set[str] = set()
    by_base: dict[str, list[str]] = {}
    for rel in rmap.index:
        by_base.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
    for token in _PATHLIKE.findall(text):
        token = token.strip("./")
        if token in rmap.index:
            files.add(token)
        elif "/" not in token and len(by_base.get(token, [])) in (1, 2):
            files.update(by_base[token])
    totals = rmap.store.totals(_WORD.findall(text))
    names = {w for w, (_v, defs) in totals.items() if defs > 0}
    return frozenset(files), frozenset(names)
