"""A cold repo map built by worker processes is the map a serial build gives, on real code."""

from __future__ import annotations

import os
import shutil
import sysconfig
import threading
from pathlib import Path

import pytest

from k2lsp.code import mappool, repomap
from k2lsp.code.repomap import RepoMap

# Real packages of the running interpreter's stdlib (~90 files, ~1.4 MB).
_PACKAGES = ("email", "json", "logging", "importlib", "concurrent", "xml")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    root = tmp_path_factory.mktemp("stdlib-part")
    for pkg in _PACKAGES:
        shutil.copytree(src / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _serial(corpus: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> RepoMap:
    with monkeypatch.context() as m:
        m.setattr(mappool, "_MIN_BYTES", 1 << 60)
        rmap = RepoMap(corpus, cache)
        rmap.refresh()
    return rmap


def _pooled(corpus: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> RepoMap:
    monkeypatch.setattr(mappool, "_MIN_BYTES", 0)
    monkeypatch.setattr(mappool, "_CHUNK_BYTES", 50_000)
    monkeypatch.setattr(mappool, "cores", lambda: 2)
    used: list[bool] = []

    def spy(root: str, files: list[tuple[str, int]]) -> object:
        got = mappool.analyze_many(root, files)
        used.append(got is not None)
        return got

    monkeypatch.setattr(repomap, "analyze_many", spy)
    rmap = RepoMap(corpus, cache)
    stats = rmap.refresh()
    assert used == [True] and stats.parsed == stats.files > 80
    return rmap


def _same_map(a: RepoMap, b: RepoMap) -> None:
    assert a.totals() == b.totals() and a.total_defs == b.total_defs
    assert list(a.store.ranked_rows()) == list(b.store.ranked_rows())
    assert a.state_token() == b.state_token()
    assert a.render(2048) == b.render(2048)
    for rel in sorted(a.index)[::7]:
        assert a.symbols(rel) == b.symbols(rel)


def test_pooled_cold_build_equals_a_serial_one(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _serial(corpus, tmp_path / "serial", monkeypatch)
    pooled = _pooled(corpus, tmp_path / "pooled", monkeypatch)
    _same_map(pooled, serial)
    # ... and an edit after it updates the map like one after the serial build.
    victim = corpus / "json" / "decoder.py"
    original = victim.read_bytes()
    try:
        victim.write_bytes(original + b"\n\ndef pooled_added(x):\n    return x\n")
        serial.refresh()
        pooled.refresh()
        _same_map(pooled, serial)
        assert pooled.symbols("json/decoder.py")[-1].name == "pooled_added"
    finally:
        victim.write_bytes(original)


def test_pooled_build_from_a_threaded_process_uses_a_fork_server(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _serial(corpus, tmp_path / "serial", monkeypatch)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # like the language server's worker threads
    other.start()
    try:
        assert mappool._context().get_start_method() == "forkserver"
        pooled = _pooled(corpus, tmp_path / "pooled", monkeypatch)
    finally:
        stop.set()
        other.join()
    _same_map(pooled, serial)


def _dies_in_a_worker(parent: int) -> object:
    real = mappool.read_and_analyze

    def analyze(root: str, rel: str) -> mappool.Analyzed:
        if os.getpid() != parent:
            os._exit(3)  # a worker killed mid-build (out of memory, a crashing grammar)
        return real(root, rel)

    return analyze


def test_a_worker_that_dies_leaves_the_rest_to_the_parent(
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serial = _serial(corpus, tmp_path / "serial", monkeypatch)
    monkeypatch.setattr(mappool, "_context", lambda: mappool.multiprocessing.get_context("fork"))
    monkeypatch.setattr(mappool, "read_and_analyze", _dies_in_a_worker(os.getpid()))
    pooled = _pooled(corpus, tmp_path / "pooled", monkeypatch)
    assert "analyzing the rest in process" in caplog.text
    _same_map(pooled, serial)


def test_small_or_single_core_builds_stay_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [("a.py", 10_000_000)]
    monkeypatch.setattr(mappool, "cores", lambda: 1)
    assert mappool.analyze_many("/nowhere", files) is None
    monkeypatch.setattr(mappool, "cores", lambda: 4)
    assert mappool.analyze_many("/nowhere", [("a.py", 1000)]) is None


def test_pooled_build_that_spills_its_totals_equals_a_serial_one(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _serial(corpus, tmp_path / "serial", monkeypatch)
    monkeypatch.setattr(repomap, "_BULK_FILES", 7)  # bounded memory: totals go to the store
    pooled = _pooled(corpus, tmp_path / "pooled", monkeypatch)
    assert pooled._spilled
    _same_map(pooled, serial)
