"""The repository map: ranking, token budget, disk cache, incremental refresh, determinism."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from k2lsp.code.rank import mentions
from k2lsp.code.repomap import RepoMap

CORE = '''\
class Engine:
    """Runs things."""

    def start(self):
        return 1


def helper():
    return 2


def _private():
    return 3
'''
USER = (
    "from core import Engine, helper\n\n\n"
    "def use():\n    return Engine().start() + helper() + Engine().start()\n"
)
OTHER = "def lonely():\n    return 0\n"


def _age(root: Path, seconds: float = 60) -> None:
    """Backdate every file so stat-only checks can trust it (like files not touched lately)."""
    old = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "core.py").write_text(CORE)
    (root / "user.py").write_text(USER)
    (root / "other.py").write_text(OTHER)
    (root / "notes.md").write_text("# not code\n")
    (root / "blob.py").write_bytes(b"\x00\x01\x02")
    (root / "latin.py").write_bytes("s = 'caf\u00e9'\n".encode("latin-1"))
    _age(root)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_map_ranks_referenced_definitions_first(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    stats = rmap.refresh()
    assert stats.files == 5 and stats.parsed == 5
    text = rmap.render(1024)
    lines = text.splitlines()
    assert lines[0].startswith("Repository map:")
    assert lines[1] == "core.py:"
    assert "class Engine  # Runs things." in text and "def helper()" in text
    assert text.index("core.py:") < text.index("other.py:")


def test_map_respects_the_token_budget(tmp_path: Path, cache: Path) -> None:
    for i in range(60):
        (tmp_path / f"m{i}.py").write_text(
            "".join(f"def func_{i}_{j}(a, b):\n    return a\n\n" for j in range(20))
        )
    rmap = RepoMap(tmp_path, cache)
    rmap.refresh()
    text = rmap.render(300)
    body = text.split("\n", 1)[1]
    assert len(body) <= 300 * 4
    assert "func_" in body


def test_warm_start_reuses_the_disk_cache(repo: Path, cache: Path) -> None:
    first = RepoMap(repo, cache)
    first.refresh()
    text = first.render(1024)
    first.flush()  # the pack is written in the background; a new process would find it
    second = RepoMap(repo, cache)
    stats = second.refresh()
    assert (stats.parsed, stats.rehashed) == (0, 0)
    assert second.render(1024) == text


def test_one_changed_file_is_reparsed_and_the_map_is_never_stale(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    (repo / "other.py").write_text("def renamed_fn():\n    return 0\n")
    stats = rmap.refresh()
    assert stats.parsed == 1 and stats.rehashed == 1
    assert "renamed_fn" in rmap.render(2048) and "lonely" not in rmap.render(2048)
    # A fresh process (new object, same cache) sees the change too, without re-parsing.
    rmap.flush()
    again = RepoMap(repo, cache)
    stats = again.refresh()
    assert stats.parsed == 0 and "renamed_fn" in again.render(2048)


def test_same_size_same_mtime_rewrite_is_caught_while_recent(repo: Path, cache: Path) -> None:
    path = repo / "other.py"
    path.write_text("def aaaaaa():\n    return 0\n")
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    st = path.stat()
    path.write_text("def bbbbbb():\n    return 0\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    rmap.refresh()
    assert "bbbbbb" in rmap.render(2048) and "aaaaaa" not in rmap.render(2048)


def test_deleted_and_new_files_are_tracked(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    (repo / "other.py").unlink()
    (repo / "pkg").mkdir()
    (repo / "pkg" / "fresh.go").write_text("package pkg\n\nfunc Fresh() int { return 1 }\n")
    stats = rmap.refresh()
    assert stats.removed == 1
    text = rmap.render(2048)
    assert "other.py" not in text and "pkg/fresh.go:" in text and "func Fresh() int" in text


def test_focus_boosts_mentioned_files_and_names(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    plain = rmap.render(1024).splitlines()
    assert plain[1] == "core.py:"
    focused = rmap.render(
        1024, focus_files=frozenset({"other.py"}), focus_names=frozenset({"lonely"})
    )
    assert focused.splitlines()[1] == "other.py:"
    files, names = mentions("Fix lonely() in other.py please", rmap)
    assert files == {"other.py"} and "lonely" in names


def test_paths_limit_the_map(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    text = rmap.render(1024, only=("user.py",))
    assert "user.py:" in text and "core.py:" not in text


@pytest.mark.parametrize("damage", ["garbage", "foreign-version", "other-root", "wrong-schema"])
def test_unusable_store_is_rebuilt_with_a_warning(
    repo: Path, cache: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    expected = rmap.render(1024)
    path = rmap.store.path
    rmap.store.close()
    if damage == "garbage":
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        path.write_bytes(b"garbage" * 1000)
    else:
        db = sqlite3.connect(path)
        if damage == "foreign-version":
            db.execute("UPDATE meta SET value = 999 WHERE key = 'version'")
        elif damage == "other-root":
            db.execute("UPDATE meta SET value = '/elsewhere' WHERE key = 'root'")
        else:
            db.execute("DROP TABLE meta")
        db.commit()
        db.close()
    with caplog.at_level(logging.WARNING, logger="k2lsp.code.store"):
        again = RepoMap(repo, cache)
    assert again.store.rebuilt and "rebuilding" in caplog.text
    stats = again.refresh()
    assert stats.parsed == 5 and again.render(1024) == expected


def test_cache_never_shows_in_git_status(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    before = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    rmap = RepoMap(repo)
    rmap.refresh()
    rmap.render(512)
    rmap.flush()
    after = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    assert after == before
    assert list((tmp_path / "xdg" / "k2lsp" / "repomap" / "stores").glob("*.sqlite"))


def test_git_ignored_files_are_left_out(repo: Path, cache: Path) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("other.py\n")
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    assert "other.py" not in rmap.files() and "core.py" in rmap.files()


def test_output_is_identical_across_processes(repo: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from k2lsp.code.repomap import RepoMap; "
        "m = RepoMap(Path(sys.argv[1]), Path(sys.argv[2])); m.refresh(); "
        "print(m.render(1024), end='')"
    )
    outs = []
    for seed, cache_name in (("1", "c1"), ("2", "c2")):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-c", code, str(repo), str(tmp_path / cache_name)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        outs.append(proc.stdout)
    assert outs[0] == outs[1] and "class Engine" in outs[0]


def test_large_file_is_mapped_in_bounded_time(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "big.py").write_text(
        "".join(f"def f{i}():\n    return {i}\n\n" for i in range(30_000))
    )
    t0 = time.monotonic()
    rmap = RepoMap(tmp_path, cache)
    rmap.refresh()
    assert "big.py" in rmap.files()
    assert time.monotonic() - t0 < 120


def test_incremental_totals_equal_a_rebuild(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    (repo / "other.py").write_text(
        "def helper():\n    return Engine\n\n\ndef brand_new():\n    pass\n"
    )
    (repo / "user.py").unlink()
    (repo / "more.py").write_text("from other import brand_new\n\nbrand_new()\nbrand_new()\n")
    rmap.refresh()
    (repo / "core.py").write_text(CORE.replace("def helper", "def helper2"))
    rmap.refresh()
    fresh = RepoMap(repo, cache.parent / "other-cache")
    fresh.refresh()
    assert rmap.totals() == fresh.totals()
    assert rmap.total_defs == fresh.total_defs
    assert _rows(rmap) == _rows(fresh)
    assert rmap.state_token() == fresh.state_token()
    assert rmap.render(1024) == fresh.render(1024)


def _rows(rmap: RepoMap) -> list[tuple[float, str, int]]:
    return list(rmap.store.ranked_rows())


def test_focused_ranking_after_edits_equals_scoring_every_file(repo: Path, cache: Path) -> None:
    from k2lsp.code.rank import _Focus, file_entries, rank_symbols

    rmap = RepoMap(repo, cache)
    rmap.refresh()
    rmap.render(1024)
    (repo / "other.py").write_text("def lonely():\n    return helper() + Engine().start()\n")
    (repo / "more.py").write_text("def start():\n    return lonely()\n")
    rmap.refresh()
    totals = rmap.totals()
    for files, names in [
        (frozenset(), frozenset()),
        (frozenset({"other.py"}), frozenset({"lonely"})),
        (frozenset({"user.py"}), frozenset()),
        (frozenset(), frozenset({"Engine.start"})),
    ]:
        got = rank_symbols(rmap, files, names)
        focus = _Focus(rmap, files, names) if files or names else None
        every = []
        for rel, entry in rmap.index.items():
            rec = rmap.record(entry[2])
            assert rec is not None
            quals = [s.qualname for s in rmap.symbols(rel)]
            every += file_entries(rel, rec, totals, focus, quals)
        every.sort()
        assert [(r, s.qualname) for _sc, r, s in got] == [
            (e[1], rmap.symbols(e[1])[e[2]].qualname) for e in every
        ]
    # The ranks kept in the store per edit equal scoring every file again.
    unfocused = sorted(
        e
        for rel, entry in rmap.index.items()
        for e in file_entries(rel, rmap.record(entry[2]) or ("", "", "", b"", ()), totals)
    )
    assert _rows(rmap) == unfocused


def test_edits_deletes_and_renames_update_the_store_like_a_rebuild(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    (repo / "core.py").write_text(CORE + "\n\ndef added_later():\n    return helper()\n")
    rmap.refresh()
    (repo / "other.py").rename(repo / "renamed.py")
    rmap.refresh()
    (repo / "user.py").unlink()
    stats = rmap.refresh()
    assert stats.removed == 1
    reopened = RepoMap(repo, cache)  # a new process: the store on disk, no re-parse
    stats = reopened.refresh()
    assert stats.parsed == 0  # (files written just now are re-hashed: their mtime is too new)
    fresh = RepoMap(repo, cache.parent / "fresh-cache")
    fresh.refresh()
    for other in (reopened, fresh):
        assert other.totals() == rmap.totals() and _rows(other) == _rows(rmap)
        assert other.render(2048) == rmap.render(2048)
    text = rmap.render(2048)
    assert "renamed.py:" in text and "other.py" not in text and "added_later" in text
    assert rmap.definitions("added_later")[0][0] == "core.py"
    assert rmap.referring_files("helper") == ["core.py"]


def test_store_written_by_another_process_is_picked_up(repo: Path, cache: Path) -> None:
    first = RepoMap(repo, cache)
    second = RepoMap(repo, cache)
    first.refresh()
    second.refresh()
    (repo / "other.py").write_text("def from_first():\n    return 1\n")
    first.refresh()  # writes the change; `second` must not count it twice
    stats = second.refresh()
    assert stats.parsed == 0
    fresh = RepoMap(repo, cache.parent / "fresh-cache")
    fresh.refresh()
    assert second.totals() == fresh.totals() and _rows(second) == _rows(fresh)
    assert "from_first" in second.render(1024)


def test_concurrent_readers_see_the_same_map(repo: Path, cache: Path) -> None:
    writer = RepoMap(repo, cache)
    writer.refresh()
    expected = writer.render(1024)
    focus_expected = writer.render(1024, frozenset({"other.py"}), frozenset({"lonely"}))
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            rmap = RepoMap(repo, cache)
            for _ in range(5):
                rmap.refresh()
                results.append(
                    (
                        rmap.render(1024),
                        rmap.render(1024, frozenset({"other.py"}), frozenset({"lonely"})),
                    )
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    code = (
        "import sys; from pathlib import Path; from k2lsp.code.repomap import RepoMap; "
        "m = RepoMap(Path(sys.argv[1]), Path(sys.argv[2])); m.refresh(); "
        "print(m.render(1024), end='')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(repo), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for t in threads:
        t.join()
    assert not errors
    assert results and all(r == (expected, focus_expected) for r in results)
    assert all(out == expected for out, _err in outs), [err for _out, err in outs]


def test_file_names_are_data_in_the_store(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    odd = ["x'); DROP TABLE defs; --.py", "100%_like.py", "caf\u00e9.py"]
    for i, name in enumerate(odd):
        (root / name).write_text(f"def odd_{i}():\n    return 1\n")
    (root / "100%_like").mkdir()
    (root / "100%_like" / "inner.py").write_text("def inner():\n    return 2\n")
    (root / "100a_like.py").write_text("def decoy():\n    return 3\n")
    _age(root)
    rmap = RepoMap(root, cache)
    rmap.refresh()
    text = rmap.render(1024)
    assert all(f"{name}:" in text for name in odd)
    only = rmap.render(1024, only=("100%_like",))
    assert "100%_like/inner.py:" in only and "decoy" not in only and "odd_1" not in only
    reopened = RepoMap(root, cache)
    assert reopened.refresh().rehashed == 0 and reopened.render(1024) == text


def test_unusable_cache_folder_falls_back_to_a_temporary_store(
    repo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    with caplog.at_level(logging.WARNING, logger="k2lsp.code.store"):
        rmap = RepoMap(repo, blocker)
    assert "cannot use the repo map store" in caplog.text
    assert not rmap.store.path.is_relative_to(repo)
    assert rmap.refresh().parsed == 5 and "class Engine" in rmap.render(1024)


def test_large_cold_build_spilled_to_the_store_equals_one_in_memory(
    repo: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k2lsp.code import repomap

    (repo / "more.py").write_text("from core import helper\n\n\ndef more():\n    return helper()\n")
    whole = RepoMap(repo, cache)
    whole.refresh()
    monkeypatch.setattr(repomap, "_BULK_FILES", 2)  # spill the totals every two files
    spilled = RepoMap(repo, cache.parent / "spilled-cache")
    spilled.refresh()
    assert spilled._spilled
    assert spilled.totals() == whole.totals() and _rows(spilled) == _rows(whole)
    assert spilled.render(1024) == whole.render(1024)


def test_a_journal_refresh_reads_only_its_paths_and_equals_a_rebuild(
    repo: Path, cache: Path
) -> None:
    """With a journal (the paths the editing tools recorded) a refresh looks at those files
    only: its cost follows the edit, not the repository. What it gives equals a rebuild."""
    journal = object()
    rmap = RepoMap(repo, cache)
    assert rmap.refresh(set(), journal).files == 5  # the first look is a full scan anyway
    (repo / "core.py").write_text(CORE + "\n\ndef added_later():\n    return helper()\n")
    (repo / "other.py").write_text("def unjournaled():\n    pass\n")  # not in the journal
    stats = rmap.refresh({"core.py", "notes.md", "gone.py"}, journal)
    assert (stats.rehashed, stats.parsed) == (1, 1)  # core.py alone (notes.md: not mapped)
    assert "added_later" in rmap.render(2048) and "unjournaled" not in rmap.render(2048)
    (repo / "user.py").unlink()
    assert rmap.refresh({"user.py"}, journal).removed == 1
    # Not this journal's last look (another caller, or none): a full scan finds the rest.
    stats = rmap.refresh({"core.py"}, object())
    assert stats.parsed == 1 and "unjournaled" in rmap.render(2048)
    fresh = RepoMap(repo, cache.parent / "fresh-cache")
    fresh.refresh()
    assert fresh.totals() == rmap.totals() and _rows(fresh) == _rows(rmap)
    assert fresh.render(2048) == rmap.render(2048)


def test_a_journal_naming_a_new_file_or_a_store_written_elsewhere_means_a_full_scan(
    repo: Path, cache: Path
) -> None:
    journal = object()
    rmap = RepoMap(repo, cache)
    rmap.refresh(None, journal)
    (repo / "other.py").write_text("def unjournaled():\n    pass\n")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "new.py").write_text("def brand_new():\n    pass\n")
    # A file the map does not index yet: whether it is listed is the listing's call.
    stats = rmap.refresh({"pkg/new.py"}, journal)
    assert stats.parsed == 2 and stats.files == 6
    text = rmap.render(2048)
    assert "brand_new" in text and "unjournaled" in text
    # Another process wrote the store since: what changed is not known, so a full scan.
    other = RepoMap(repo, cache)
    (repo / "core.py").write_text(CORE.replace("def helper", "def helper_by_other"))
    other.refresh()
    (repo / "user.py").write_text(USER + "\n\ndef mine():\n    pass\n")
    (repo / "other.py").write_text("def also_unjournaled():\n    pass\n")
    rmap.refresh({"user.py"}, journal)
    text = rmap.render(2048)
    assert "helper_by_other" in text and "mine" in text and "also_unjournaled" in text
