"""One file-listing engine: `list_files`, `search`, `repo_map` and the workspace ignore checks
agree on which files exist, in a real git repository with every kind of ignore rule, and with
`GIT_DIR`/`GIT_WORK_TREE` in the environment pointing at another repository.

All four run for real: the tools through the registry (as the model calls them), the checks
through `Workspace.ignored`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from k2lsp.agent.events import Emitter, Event
from k2lsp.code.filelist import ListingError
from k2lsp.code.languages import EXTENSIONS
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext, ToolResult
from k2lsp.workspace import Workspace

# What the listing must be, whatever the consumer: hidden files yes, `.git` no, every ignore
# file honoured (root and nested .gitignore with a negation, .ignore, .rgignore,
# .git/info/exclude, a tracked file an ignore rule matches), symlinks never.
EXPECTED = {
    ".gitignore",
    ".ignore",
    ".rgignore",
    ".hidden.py",
    ".config/tool.py",
    "blob.bin",
    "main.py",
    "pkg/mod.py",
    "sub/.gitignore",
    "sub/keep.py",
}
LEFT_OUT = {
    "gen/x.py",  # .ignore: gen/
    "build/o.py",  # .gitignore: build/
    "app.log",  # .gitignore: *.log
    "tracked.log",  # *.log, although committed with `git add -f`
    "scratch.py",  # .rgignore
    "excluded.py",  # .git/info/exclude
    "sub/a.py",  # sub/.gitignore: *.py
    "sub/deeper/b.py",  # sub/.gitignore applies below sub/ too
    "link.py",  # symlink to a file outside the workspace
    "linkdir",  # symlink to a folder outside the workspace
}


def _git(cwd: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t")
    env.update(GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _src(name: str) -> str:
    """A Python file with one definition and one line any search pattern `.` hits."""
    slug = "".join(c if c.isalnum() else "_" for c in name)
    return f"def def_{slug}():\n    return 1\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    outside = tmp_path / "outside"
    _write(outside, {"secret_code.py": _src("outside")})
    other = tmp_path / "other"  # the repository GIT_DIR points at
    _write(other, {"other_only.py": _src("other"), "gen/other_gen.py": _src("og")})
    _git(other, "init", "-q")
    _git(other, "add", "-A")
    _git(other, "commit", "-qm", "other")

    root = tmp_path / "ws"
    _git(tmp_path, "init", "-q", str(root))
    _write(
        root,
        {
            ".gitignore": "*.log\nbuild/\n",
            ".ignore": "gen/\n",
            ".rgignore": "scratch.py\n",
            "sub/.gitignore": "*.py\n!keep.py\n",
            "tracked.log": "kept by git\n",
        },
    )
    _git(root, "add", "-f", "tracked.log", ".gitignore")
    _git(root, "commit", "-qm", "base")
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("excluded.py\n")
    py = [
        ".hidden.py",
        ".config/tool.py",
        "main.py",
        "pkg/mod.py",
        "sub/keep.py",
        "gen/x.py",
        "build/o.py",
        "scratch.py",
        "excluded.py",
        "sub/a.py",
        "sub/deeper/b.py",
    ]
    _write(root, {rel: _src(rel) for rel in py})
    _write(root, {"app.log": "log line\n", "blob.bin": b"\x00\x01binary\x00data\n"})
    (root / "link.py").symlink_to(outside / "secret_code.py")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)

    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # No user-wide git excludes (ripgrep reads core.excludesFile): the rules are the repo's.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.delenv("K2LSP_RG", raising=False)
    return root


def _ctx(root: Path) -> ToolContext:
    events: list[Event] = []
    return ToolContext(Workspace(root), emitter=Emitter("run-listing", [events.append]))


async def _call(root: Path, tool: str, **args: Any) -> ToolResult:
    res = await build_registry().execute(tool, args, _ctx(root))
    assert res.ok, res.text
    return res


def _tree_paths(text: str) -> set[str]:
    out, folder = set(), ""
    for line in text.splitlines()[1:]:
        if line.startswith("["):
            continue
        if line.endswith("/"):
            folder = line
        elif line.startswith("  "):
            out.add(folder + line.strip())
        else:
            out.add(line)
    return out


async def _listed(root: Path, path: str = ".") -> set[str]:
    return _tree_paths((await _call(root, "list_files", path=path)).text)


async def _searched(root: Path, path: str = ".") -> set[str]:
    res = await _call(root, "search", pattern=".", path=path, max_results=1000)
    return {line.split(":", 1)[0] for line in res.text.splitlines()[1:] if ":" in line}


async def _mapped(root: Path) -> set[str]:
    res = await _call(root, "repo_map", max_tokens=16384)
    return {ln[:-1] for ln in res.text.splitlines()[1:] if ln.endswith(":") and ln[0] != " "}


def _checked(root: Path) -> set[str]:
    """Every path on disk (files, links, folders; `.git` itself but not inside it) minus what
    the workspace checks call ignored, keeping files only."""
    files: set[str] = set()
    paths: set[str] = set()
    for folder, dirs, names in os.walk(root):
        rel_dir = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        paths.update(prefix + d for d in dirs)
        dirs[:] = [d for d in dirs if d != ".git"]
        files.update(prefix + n for n in names)
        paths.update(prefix + n for n in names)
    ignored = Workspace(root).ignored(sorted(paths))
    assert ".git" in ignored and "gen" in ignored and "build" in ignored
    assert "sub" not in ignored and "pkg" not in ignored
    return {f for f in files if f not in ignored}


def _is_source(rel: str) -> bool:
    return Path(rel).suffix.lower() in EXTENSIONS


async def test_the_four_consumers_agree_on_the_file_set(repo: Path) -> None:
    listed = await _listed(repo)
    assert listed == EXPECTED
    assert not listed & LEFT_OUT
    # search sees the same files; the binary one has no text line to match.
    assert await _searched(repo) == listed - {"blob.bin"}
    # the repo map covers the listed files a grammar knows.
    assert await _mapped(repo) == {f for f in listed if _is_source(f)}
    assert _checked(repo) == listed


async def test_git_dir_in_the_environment_does_not_redirect_any_consumer(repo: Path) -> None:
    everything = await _listed(repo) | await _searched(repo) | await _mapped(repo) | _checked(repo)
    assert "other_only.py" not in everything and "gen/other_gen.py" not in everything
    assert "main.py" in everything


async def test_naming_an_ignored_folder_does_not_bring_it_back(repo: Path) -> None:
    res = await _call(repo, "list_files", path="gen")
    assert res.text.startswith("No files under gen")
    assert await _searched(repo, "gen") == set()
    assert await _searched(repo, "sub") == {"sub/keep.py", "sub/.gitignore"}
    assert await _listed(repo, "sub") == {"sub/keep.py", "sub/.gitignore"}
    refs = await _call(repo, "find_symbol", name="def_gen_x_py")
    assert "gen/x.py" not in refs.text


async def test_dot_git_is_never_listed_even_when_asked_for(repo: Path) -> None:
    res = await build_registry().execute("list_files", {"path": ".git"}, _ctx(repo))
    assert ".git/" not in res.text and "HEAD" not in res.text
    res = await build_registry().execute("search", {"pattern": "base", "path": ".git"}, _ctx(repo))
    assert "COMMIT_EDITMSG" not in res.text and "logs/HEAD" not in res.text


async def test_ignore_files_above_a_repository_top_do_not_apply(tmp_path: Path) -> None:
    """A repository checked out inside another one's ignored folder lists what git lists there:
    the outer repository's rules stop at the inner `.git`; a plain subfolder still obeys them."""
    outer = tmp_path / "outer"
    _git(tmp_path, "init", "-q", str(outer))
    _write(outer, {".gitignore": "cache/\n*.log\n"})
    inner = outer / "cache" / "ws"
    _git(tmp_path, "init", "-q", str(inner))
    _write(inner, {"a.py": _src("a"), "run.log": "x\n"})
    plain = outer / "sub"
    _write(plain, {"c.py": _src("c"), "run.log": "x\n"})
    assert await _listed(inner) == {"a.py", "run.log"}
    assert await _searched(inner) == {"a.py", "run.log"}
    assert Workspace(inner).ignored(["a.py", "run.log"]) == set()
    assert await _listed(plain) == {"c.py"}
    assert await _searched(plain) == {"c.py"}
    assert Workspace(plain).ignored(["c.py", "run.log"]) == {"run.log"}


async def test_without_ripgrep_every_consumer_says_what_is_missing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K2LSP_RG", "none")
    calls = (("list_files", {}), ("search", {"pattern": "def"}), ("repo_map", {}))
    for tool, args in calls:
        res = await build_registry().execute(tool, args, _ctx(repo))
        assert not res.ok and "ripgrep binary (rg) was not found" in res.text, res.text
        assert "K2LSP_RG" in res.text
    with pytest.raises(ListingError, match="K2LSP_RG"):
        Workspace(repo).ignored(["main.py"])
