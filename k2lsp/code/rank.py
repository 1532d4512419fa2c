"""Ranking definitions and rendering the token-budgeted repository map text."""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from k2lsp.code.repomap import Record, rec_statics, rec_votes
from k2lsp.code.sortedlist import ChunkedSortedList
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


def _file_entries(rmap: RepoMap, rel: str, rec: Record, focus: _Focus | None) -> list[Entry]:
    """Scored entries of one file's definitions, best first."""
    refsum, defcount = rmap.refsum, rmap.defcount
    file_factor = _TEST_FACTOR if _TESTISH.search(rel) else 1.0
    if focus is not None and rel in focus.files:
        file_factor *= _FOCUS_FILE_BOOST
    quals = (
        [t[1] for t in rmap.symbol_tuples(rmap.index[rel][2])]
        if focus is not None and focus.names
        else None
    )
    out = []
    for i, (name, (own, prior)) in enumerate(zip(rec[4], rec_statics(rec), strict=True)):
        votes: float = refsum.get(name, 0) - own
        if focus is not None:
            votes += focus.refs.get(name, 0)
        ndefs = defcount.get(name, 1) or 1
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
        defcount = rmap.defcount
        for rel in files:
            entry = rmap.index.get(rel)
            rec = rmap.records.get(entry[2]) if entry else None
            if rec is not None:
                for name, votes in rec_votes(rec).items():
                    if 0 < defcount.get(name, 0) <= _FOCUS_MAX_DEFS:
                        self.refs[name] = self.refs.get(name, 0) + _FOCUS_REF_BOOST * votes


_RESORT_FILES = 256  # more changed files than this: sort everything again


def _unfocused(rmap: RepoMap) -> dict[str, tuple[str, list[Entry], tuple[str, ...]]]:
    """Per-file (digest, scored entries, defined names) without focus, brought up to date,
    and `rmap.rank_sorted`, every file's entries in one sorted list.

    Recomputed only for files that changed or define a name whose votes changed since the
    last call; their entries are moved in the chunked sorted list, so one edit costs
    little whatever the repository size.
    """
    cache = rmap.rank_cache
    dirty, dirty_all = rmap.take_dirty()
    resort = dirty_all or not len(rmap.rank_sorted)
    changed: list[tuple[list[Entry], list[Entry]]] = []
    for rel in [r for r in cache if r not in rmap.index]:
        changed.append((cache.pop(rel)[1], []))
    for rel, entry in rmap.index.items():
        cached = cache.get(rel)
        if (
            cached is None
            or cached[0] != entry[2]
            or dirty_all
            or (dirty and not dirty.isdisjoint(cached[2]))
        ):
            old = cached[1] if cached is not None else []
            rec = rmap.records.get(entry[2])
            if rec is None:
                cache.pop(rel, None)
                changed.append((old, []))
                continue
            names = rec[4]
            new = _file_entries(rmap, rel, rec, None)
            cache[rel] = (entry[2], new, names)
            changed.append((old, new))
    if resort or len(changed) > _RESORT_FILES:
        rmap.rank_sorted = ChunkedSortedList(e for c in cache.values() for e in c[1])
        return cache
    glob = rmap.rank_sorted
    for old, new in changed:
        for e in old:
            glob.discard(e)
        for e in new:
            glob.add(e)
    return cache


def rank_symbols(
    rmap: RepoMap,
    focus_files: frozenset[str],
    focus_names: frozenset[str],
    limit: int | None = None,
) -> list[tuple[float, str, Symbol]]:
    """(score, file, symbol) of the best `limit` definitions (all when None), best first.

    Focus changes the scores of the focus files and of the files defining a name the focus
    files or names mention; only those are re-scored and merged with the sorted unfocused
    entries of every other file.
    """
    cache = _unfocused(rmap)
    glob = rmap.rank_sorted
    if focus_files or focus_names:
        focus = _Focus(rmap, focus_files, focus_names)
        touched = set(focus.refs) | {n.rsplit(".", 1)[-1] for n in focus.names}
        hit = {
            rel
            for rel, (_d, _e, names) in cache.items()
            if rel in focus.files or not touched.isdisjoint(names)
        }
        focused = sorted(
            e for rel in hit for e in _file_entries(rmap, rel, rmap.records[cache[rel][0]], focus)
        )
        rest = (e for e in glob if e[1] not in hit)
        merged: Iterable[Entry] = heapq.merge(focused, rest)
    else:
        merged = iter(glob)
    best = list(itertools.islice(merged, limit)) if limit is not None else list(merged)
    decoded: dict[str, tuple[tuple[Any, ...], ...]] = {}
    out = []
    for neg, rel, i in best:
        syms = decoded.get(rel)
        if syms is None:
            syms = decoded[rel] = rmap.symbol_tuples(cache[rel][0])
        out.append((-neg, rel, Symbol(*syms[i])))
    return out


def _line(sym: Symbol, with_doc: bool) -> str:
    text = f"{sym.start_line:>6} {'  ' * sym.depth}{sym.signature}"
    if with_doc and sym.doc:
        doc = sym.doc if len(sym.doc) <= 70 else sym.doc[:67] + "..."
        text += f"  # {doc}"
    return text


def _ancestors(
    rmap: RepoMap,
    rel: str,
    qualname: str,
    shown: dict[str, Symbol],
    cache: dict[str, dict[str, tuple]],
) -> list[Symbol]:
    """Enclosing definitions of `qualname` not shown yet (outermost last)."""
    quals = cache.get(rel)
    if quals is None:
        quals = {t[1]: t for t in reversed(rmap.symbol_tuples(rmap.index[rel][2]))}
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
    limit = None if only else max_tokens * CHARS_PER_TOKEN // 12 + 200
    ranked = rank_symbols(rmap, focus_files, focus_names, limit)
    if only:
        ranked = [
            r
            for r in ranked
            if any(r[1] == p or r[1].startswith(p.rstrip("/") + "/") for p in only)
        ]
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
            extra = _ancestors(rmap, rel, sym.qualname, lines, by_qual_cache)
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
    names = {w for w in _WORD.findall(text) if rmap.defcount.get(w, 0) > 0}
    return frozenset(files), frozenset(names)
