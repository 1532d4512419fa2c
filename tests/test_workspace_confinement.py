"""Path confinement (property-tested), the secret denylist and ignore rules of Workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from git_helpers import git, make_repo, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2lsp.errors import PathError
from k2lsp.workspace import Workspace, is_git_meta


@pytest.fixture(scope="module")
def jail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path]:
    """A workspace full of traps: symlinks out, up, to /, loops, plus a sibling with a
    near-identical name (prefix and case tricks)."""
    base = tmp_path_factory.mktemp("confine")
    root = base / "Root"
    outside = base / "outside"
    for folder in (root / "sub" / "deep", outside, base / "Root2", base / "root"):
        folder.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("s")
    (root / "sub" / "file.txt").write_text("f")
    links = {
        "out": outside,
        "up": Path(".."),
        "slash": Path("/"),
        "etc": Path("/etc"),
        "sib": base / "Root2",
        "inner": Path("sub"),
        "loop": Path("loop"),
        "dangling": base / "outside" / "missing",
        "sub/deep/back": Path("../../.."),
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    write(root, GIT_META)
    os.symlink(".git", root / "gl")
    os.symlink(".git/config", root / "gc")
    os.symlink("../.git", root / "sub" / "gup")
    return Workspace(root), base


SENTINEL = "SENTINEL-GIT-METADATA"
GIT_META: dict[str, str | bytes] = {
    ".git/config": f"[core]\n\t# {SENTINEL}\n\tfsmonitor = false\n",
    ".git/HEAD": f"ref: refs/heads/{SENTINEL}\n",
    ".git/hooks/pre-commit": f"#!/bin/sh\necho {SENTINEL}\n",
    ".git/x.py": f"def f():\n    return '{SENTINEL}'\n",
    "sub/.git": f"gitdir: ../.git # {SENTINEL}\n",
}

SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "sub",
        "deep",
        "file.txt",
        "out",
        "up",
        "slash",
        "etc",
        "sib",
        "inner",
        "loop",
        "dangling",
        "back",
        "Root",
        "root",
        "ROOT",
        "Root2",
        "outside",
        "secret.txt",
        "SUB",
        "..\\..",
        "~",
        "~root",
        "x\x00y",
        "a" * 300,
        ".git",
        ".GIT",
        ".Git",
        ".git.",
        ".git ",
        "gl",
        "gc",
        "gup",
        "config",
        "HEAD",
        "hooks",
        "x.py",
        "...",
        " ..",
        ".. ",
    ]
)
PREFIXES = st.sampled_from(["", "/", "//", "./", "../", "/etc/", "/tmp/", "~/", "~root/"])


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    """Path strings mixing traversal, absolute prefixes, symlink names, NUL and case variants."""
    parts = draw(st.lists(SEGMENTS, min_size=0, max_size=8))
    sep = draw(st.sampled_from(["/", "//", "/./"]))
    return draw(PREFIXES) + sep.join(parts) + draw(st.sampled_from(["", "/", "/."]))


@settings(
    max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(raw=st.one_of(raw_paths(), st.text(max_size=40)), under_root=st.booleans())
def test_resolve_never_escapes_the_root(
    jail: tuple[Workspace, Path], raw: str, under_root: bool
) -> None:
    ws, base = jail
    path = str(base / "Root") + "/" + raw if under_root else raw
    try:
        resolved = ws.resolve(path)
    except PathError:
        return
    real = Path(os.path.realpath(resolved))
    assert real == ws.root or real.is_relative_to(ws.root), (path, real)
    assert resolved == ws.root or resolved.is_relative_to(ws.root)
    inside = [*real.relative_to(ws.root).parts, *resolved.relative_to(ws.root).parts]
    assert not any(is_git_meta(part) for part in inside), (path, real)


def _git_meta_state(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in [*(root / ".git").rglob("*"), root / "sub" / ".git"]
        if p.is_file()
    }


GIT_TARGETS = st.sampled_from(
    [
        ".git",
        ".git/config",
        ".GIT/config",
        ".Git/HEAD",
        ".git./config",
        ".git /config",
        "./.git/hooks/pre-commit",
        "sub/../.git/config",
        "sub/.git",
        "sub/gup/config",
        "gl/config",
        "gl/x.py",
        "gc",
        ".git/new.py",
        ".git/hooks/post-checkout",
        "gl/hooks/fsmonitor",
        "sub/.git/x.py",
    ]
)


@st.composite
def git_tool_calls(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """A tool call aimed at git metadata (every file tool, hostile paths and case tricks)."""
    path = draw(GIT_TARGETS)
    prefix = draw(st.sampled_from(["", "./", "sub/../", "inner/../"]))
    path = prefix + path
    code = "def f():\n    return 2\n"
    name = draw(
        st.sampled_from(
            [
                "read_file",
                "create_file",
                "edit_file",
                "delete_file",
                "list_files",
                "search",
                "apply_patch",
                "replace_symbol",
                "insert_code",
                "find_symbol",
                "git_show",
            ]
        )
    )
    args: dict[str, object] = {
        "read_file": {"path": path},
        "create_file": {"path": path, "content": code},
        "edit_file": {"path": path, "old_text": "SENTINEL", "new_text": "X"},
        "delete_file": {"path": path},
        "list_files": {"path": path},
        "search": {"pattern": "SENTINEL", "path": path},
        "apply_patch": {
            "patch": f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-[core]\n+[core] # x\n"
            if draw(st.booleans())
            else f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x = 1\n"
        },
        "replace_symbol": {"path": path, "symbol": "f", "code": code},
        "insert_code": {"path": path, "code": code},
        "find_symbol": {"name": "f", "path": path},
        "git_show": {"rev": "HEAD", "path": path},
    }[name]
    return name, args


@settings(
    max_examples=1_500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(call=git_tool_calls())
def test_tools_never_read_or_write_git_metadata(
    jail: tuple[Workspace, Path], call: tuple[str, dict[str, object]]
) -> None:
    import asyncio

    from k2lsp.tools import build_registry
    from k2lsp.tools.base import ToolContext

    ws, _ = jail
    before = _git_meta_state(ws.root)
    name, args = call
    result = asyncio.run(build_registry().execute(name, args, ToolContext(ws)))
    assert SENTINEL not in result.text, (name, args, result.text)
    assert _git_meta_state(ws.root) == before, (name, args)
    assert not result.ok or name in ("search", "find_symbol"), (name, args, result.text)


@pytest.mark.parametrize(
    "raw",
    [
        "../outside/secret.txt",
        "out/secret.txt",
        "up/outside",
        "slash/etc/passwd",
        "etc/passwd",
        "/etc/passwd",
        "sib/x",
        "sub/deep/back/outside",
        "loop",
        "loop/x",
        "a\x00b",
        "~/.ssh/id_rsa",
        "../root/x",
        "../Root2/x",
        "dangling",
    ],
)
def test_known_escapes_are_refused_with_a_reason(jail: tuple[Workspace, Path], raw: str) -> None:
    ws, _ = jail
    with pytest.raises(PathError) as err:
        ws.resolve(raw)
    assert str(err.value)


@pytest.mark.parametrize(
    "raw, rel",
    [
        ("sub/file.txt", "sub/file.txt"),
        ("inner/file.txt", "sub/file.txt"),
        ("sub/../sub/./file.txt", "sub/file.txt"),
        ("new/not/yet.py", "new/not/yet.py"),
        (".", "."),
    ],
)
def test_paths_inside_are_resolved(jail: tuple[Workspace, Path], raw: str, rel: str) -> None:
    ws, _ = jail
    assert ws.rel(ws.resolve(raw)) == rel


def test_resolve_entry_keeps_a_final_symlink(jail: tuple[Workspace, Path]) -> None:
    ws, _ = jail
    assert ws.resolve_entry("out") == ws.root / "out"
    with pytest.raises(PathError):
        ws.resolve_entry("out/secret.txt")


@pytest.mark.parametrize(
    "rel",
    [
        ".env",
        ".env.local",
        "config/.env.production",
        "certs/server.pem",
        "id_rsa",
        "id_ed25519.pub",
        ".aws/credentials",
        "home/.aws/credentials",
        "gcp-credentials.json",
        ".netrc",
        "prod.tfvars",
    ],
)
def test_secret_files_are_not_read_unless_allowed(tmp_path: Path, rel: str) -> None:
    write(tmp_path, {rel: "TOKEN=abc\n"})
    ws = Workspace(tmp_path)
    with pytest.raises(PathError, match="allow_secrets"):
        ws.read_text(rel)
    assert Workspace(tmp_path, allow_secrets=True).read_text(rel) == "TOKEN=abc\n"


def test_secret_globs_extend_and_lift_the_denylist(tmp_path: Path) -> None:
    write(tmp_path, {".env.example": "A=1\n", "vault.yml": "x\n", "main.py": "print()\n"})
    ws = Workspace(tmp_path, secret_globs=["vault.yml", "!.env.*"])
    assert ws.read_text(".env.example") == "A=1\n"
    with pytest.raises(PathError, match="secret"):
        ws.read_text("vault.yml")
    assert ws.read_text("main.py") == "print()\n"
    assert not ws.is_secret("src/environment.py")


def test_from_settings_carries_secret_settings(tmp_path: Path) -> None:
    from k2lsp.config import Settings

    settings = Settings(secret_globs=["*.secret"])
    ws = Workspace.from_settings(tmp_path, settings, overlay={"a.py": "x"})
    assert ws.is_secret("k.secret") and ws.overlay == {"a.py": "x"} and not ws.allow_secrets


def test_ignore_rules_in_git_and_plain_folders(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".gitignore": "*.log\nbuild/\n"})
    write(repo, {"kept.log": "k\n"})
    git(repo, "add", "-f", "kept.log")
    write(repo, {"a.log": "x", "build/o.txt": "y", "src/m.py": "z"})
    ws = Workspace(repo)
    # One engine with list_files (ripgrep): an ignore rule hides a file whether git tracks it
    # or not, and a path that does not exist is never reported.
    rels = ["a.log", "build/o.txt", "build", "src/m.py", "src", "kept.log", "gone.log", ".git"]
    assert ws.ignored(rels) == {"a.log", "build/o.txt", "build", "kept.log", ".git"}
    assert ws.is_ignored("a.log") and not ws.is_ignored("src/m.py")
    plain = tmp_path / "plain"
    write(plain, {".gitignore": "*.log\n!keep.log\n", "a.log": "", "keep.log": "", "m.py": ""})
    assert Workspace(plain).ignored(["a.log", "keep.log", "m.py"]) == {"a.log"}


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("search", {"pattern": "SENTINEL"}),
        ("search", {"pattern": "SENTINEL", "fixed_strings": True, "glob": "**/*"}),
        ("list_files", {}),
        ("list_files", {"pattern": "*config*"}),
        ("find_symbol", {"name": "f"}),
        ("repo_map", {}),
    ],
)
def test_whole_tree_views_leave_git_metadata_out(
    jail: tuple[Workspace, Path], name: str, args: dict[str, object]
) -> None:
    import asyncio

    from k2lsp.tools import build_registry
    from k2lsp.tools.base import ToolContext

    ws, _ = jail
    result = asyncio.run(build_registry().execute(name, args, ToolContext(ws)))
    assert SENTINEL not in result.text, result.text
    assert ".git/" not in result.text.replace(".gitignore", "")
