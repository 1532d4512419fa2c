"""Path confinement (property-tested), the secret denylist and ignore rules of Workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from git_helpers import git, make_repo, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2lsp.errors import PathError
from k2lsp.workspace import Workspace


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
    return Workspace(root), base


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
