"""Parallel analysis for a cold repo map build: files read, hashed and parsed in worker
processes, one per core, when the work is large enough to pay for starting them.

Only the analysis moves: the parent still writes the store, counts votes and ranks, in the
same order as a serial build, so the map is the same. A process that has no other threads
forks its workers (nothing to import again); one that has threads (the language server)
uses a fork server, which never copies a lock held by another thread. Without cores to
spare, below `_MIN_BYTES` of source, or when a pool cannot start, the caller analyzes in
process; a pool that breaks part-way leaves the rest to be analyzed in process too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from sys import intern
from typing import Any

from k2lsp.code.cache import content_hash
from k2lsp.code.maprecord import Record, _analyze
from k2lsp.errors import PathError
from k2lsp.fs import safefs

log = logging.getLogger(__name__)

# Below this much source a pool costs more to start (tens of ms) than it saves.
_MIN_BYTES = 3_000_000
_CHUNK_BYTES = 256_000  # source bytes per task: small enough to balance, big enough to batch
_MAX_WORKERS = 8
_IN_FLIGHT = 4  # tasks queued per worker (bounds results waiting for the parent)

# One analyzed file: (content hash, record), or None when it could not be read.
Analyzed = tuple[str, Record] | None
# A task's files in order, with their identifier votes and defined names summed (merged in
# the worker, so the parent adds one small table per task instead of one per file).
Chunk = tuple[list[Analyzed], dict[str, int], dict[str, int]]


def read_and_analyze(root: str, rel: str) -> tuple[str, Record, dict[str, int]] | None:
    """Read one file (never through a link) and analyze it: hash, record, votes."""
    try:
        with safefs.open_read(Path(root), rel) as fh:
            data = fh.read()
    except (OSError, PathError):
        return None
    rec, votes = _analyze(rel, data)
    return content_hash(data), rec, votes


def _analyze_chunk(root: str, rels: list[str]) -> Chunk:
    items: list[Analyzed] = []
    votes: dict[str, int] = {}
    get = votes.get
    defs: Counter[str] = Counter()
    for rel in rels:
        got = read_and_analyze(root, rel)
        if got is None:
            items.append(None)
            continue
        digest, rec, file_votes = got
        for name, n in file_votes.items():
            votes[name] = get(name, 0) + n
        defs.update(rec[4])
        items.append((digest, rec))
    return items, votes, dict(defs)


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["k2lsp.code.mappool"])
        return ctx
    return None


def analyze_many(root: str, files: Sequence[tuple[str, int]]) -> Iterator[Chunk] | None:
    """Analyses of `files` ((path, size) pairs), in order and in chunks, computed by worker
    processes; None when a pool would not pay (the caller then analyzes them itself)."""
    workers = min(cores(), _MAX_WORKERS)
    if workers < 2 or sum(size for _rel, size in files) < _MIN_BYTES:
        return None
    ctx = _context()
    if ctx is None:
        return None
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    except (OSError, ValueError) as exc:
        log.warning("cannot start repo map workers (%s); analyzing in process", exc)
        return None
    return _results(pool, root, _chunks(files), workers * _IN_FLIGHT)


def _chunks(files: Sequence[tuple[str, int]]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    size = 0
    for rel, n in files:
        if size >= _CHUNK_BYTES:
            out.append([])
            size = 0
        out[-1].append(rel)
        size += n
    return out


def _results(
    pool: ProcessPoolExecutor, root: str, chunks: list[list[str]], window: int
) -> Iterator[Chunk]:
    queued: deque[tuple[list[str], Future[Chunk] | None]] = deque()
    todo = iter(chunks)
    broken = done = False
    try:
        while True:
            while not broken and len(queued) < window:
                rels = next(todo, None)
                if rels is None:
                    break
                try:
                    queued.append((rels, pool.submit(_analyze_chunk, root, rels)))
                except RuntimeError:  # the pool broke: the rest in process
                    broken = True
            if not queued:
                rels = next(todo, None)
                if rels is None:
                    done = True
                    return
                queued.append((rels, None))
            rels, future = queued.popleft()
            got = _result(future, root, rels)
            if got is None:
                broken = True
                got = _analyze_chunk(root, rels)
            items, votes, defs = got
            yield [_shared(item) for item in items], votes, defs
    finally:  # all done: the workers are idle and exit at once (reaped, nothing left)
        pool.shutdown(wait=done, cancel_futures=True)


def _result(future: Future[Chunk] | None, root: str, rels: list[str]) -> Chunk | None:
    if future is None:
        return _analyze_chunk(root, rels)
    try:
        return future.result()
    except Exception as exc:  # a worker died (BrokenProcessPool) or could not unpickle
        log.warning("repo map worker failed (%s); analyzing the rest in process", exc)
        return None


def _shared(item: Analyzed) -> Analyzed:
    """Names arrive as fresh strings from the worker: share one copy of each."""
    if item is None:
        return None
    digest, rec = item
    return digest, (rec[0], rec[1], rec[2], rec[3], tuple(map(intern, rec[4])))
