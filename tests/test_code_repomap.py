"""The repository map: ranking, token budget, disk cache, incremental refresh, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_corrupt_cache_is_rebuilt(repo: Path, cache: Path) -> None:
    rmap = RepoMap(repo, cache)
    rmap.refresh()
    rmap.flush()
    rmap.cache.pack_path.write_bytes(b"garbage")
    again = RepoMap(repo, cache)
    stats = again.refresh()
    assert stats.parsed == 5 and "class Engine" in again.render(1024)


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
    assert (tmp_path / "xdg" / "k2lsp" / "repomap" / "packs").is_dir()


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
    assert rmap.refsum == fresh.refsum and rmap.defcount == fresh.defcount
    assert rmap.allvotes == fresh.allvotes
    assert rmap.total_defs == fresh.total_defs
    assert rmap.state_token() == fresh.state_token()
    assert rmap.render(1024) == fresh.render(1024)


def test_focused_ranking_after_edits_equals_scoring_every_file(repo: Path, cache: Path) -> None:
    from k2lsp.code.rank import _file_entries, _Focus, rank_symbols

    rmap = RepoMap(repo, cache)
    rmap.refresh()
    rmap.render(1024)  # fills the unfocused cache
    (repo / "other.py").write_text("def lonely():\n    return helper() + Engine().start()\n")
    (repo / "more.py").write_text("def start():\n    return lonely()\n")
    rmap.refresh()
    for files, names in [
        (frozenset({"other.py"}), frozenset({"lonely"})),
        (frozenset({"user.py"}), frozenset()),
        (frozenset(), frozenset({"Engine.start"})),
    ]:
        got = rank_symbols(rmap, files, names)
        focus = _Focus(rmap, files, names)
        every = sorted(
            e
            for rel, entry in rmap.index.items()
            if entry[2] in rmap.records
            for e in _file_entries(rmap, rel, rmap.records[entry[2]], focus)
        )
        assert [(r, s.qualname) for _sc, r, s in got] == [
            (e[1], rmap.symbols(e[1])[e[2]].qualname) for e in every
        ]
    # The sorted list kept up to date by bisection equals sorting every file's entries again.
    expected = sorted(e for c in rmap.rank_cache.values() for e in c[1])
    assert list(rmap.rank_sorted) == expected and len(rmap.rank_sorted) == len(expected)
