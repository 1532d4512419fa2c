"""Issue 10, item 3: a folder swapped for a symlink while a tool writes never redirects the
write outside the run copy.

A racer process (what a process left running in the sandbox does) atomically exchanges `pkg`
with a symlink to a folder outside the workspace (`renameat2(RENAME_EXCHANGE)`) non-stop,
while `create_file`, `edit_file`, `apply_patch` and `delete_file` write into `pkg/` hundreds
of times. Whatever the
interleaving, nothing is ever created, changed or removed outside the workspace; a tool either
writes inside or reports that it refused to follow a link.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k2lsp import safefs
from k2lsp.errors import PathError
from k2lsp.tools import build_registry
from k2lsp.tools.base import ToolContext
from k2lsp.workspace import Workspace

RACER = """
import ctypes, os, sys
pkg, spare, outside = sys.argv[1:4]
os.symlink(outside, spare)
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = os.fsencode(pkg), os.fsencode(spare)
open(sys.argv[4], "w").close()
while True:  # atomically exchange the folder and the link: `pkg` is never missing
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""
TRIES = 300


@pytest.fixture
def race(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A workspace whose `pkg/` a racer keeps swapping with a symlink to `outside/`."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "pkg").mkdir(parents=True)
    outside.mkdir()
    (root / "pkg" / "mod.py").write_text("X = 0\n")
    (outside / "mod.py").write_text("X = 0\n")
    (outside / "victim.py").write_text("V = 1\n")
    ready = tmp_path / "ready"
    racer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RACER,
            str(root / "pkg"),
            str(tmp_path / "spare"),
            str(outside),
            str(ready),
        ]
    )
    try:
        while not ready.exists():
            time.sleep(0.01)
        yield root, outside
    finally:
        racer.kill()
        racer.wait()


def _outside_state(outside: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in outside.iterdir()}


def test_tool_writes_never_land_outside_while_a_folder_is_swapped(
    race: tuple[Path, Path],
) -> None:
    root, outside = race
    before = _outside_state(outside)
    ctx = ToolContext(Workspace(root))
    registry = build_registry()
    landed = refused = 0

    async def attempt(i: int) -> None:
        nonlocal landed, refused
        calls = [
            ("create_file", {"path": f"pkg/new_{i}.py", "content": f"N = {i}\n"}),
            ("edit_file", {"path": "pkg/mod.py", "old_text": "X = ", "new_text": "X = 1 + "}),
            (
                "apply_patch",
                {"patch": f"--- /dev/null\n+++ b/pkg/p_{i}.py\n@@ -0,0 +1 @@\n+P = {i}\n"},
            ),
            ("create_file", {"path": "pkg/victim.py", "content": "V = 1\n"}),
            ("delete_file", {"path": "pkg/victim.py"}),
        ]
        for name, args in calls:
            result = await registry.execute(name, args, ctx)
            if result.ok:
                landed += 1
            else:
                refused += 1

    async def main() -> None:
        for i in range(TRIES):
            await attempt(i)

    asyncio.run(main())
    assert _outside_state(outside) == before, "a tool wrote outside the workspace"
    assert landed > 0  # the race did not simply make every write fail
    assert landed + refused == 5 * TRIES


def test_safefs_refuses_a_symlinked_folder_on_the_way(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    (outside / "f.txt").write_text("keep")
    for op in (
        lambda: safefs.write_bytes(root, "link/f.txt", b"x"),
        lambda: safefs.write_bytes(root, "link/new/f.txt", b"x"),
        lambda: safefs.unlink(root, "link/f.txt"),
        lambda: safefs.read_entry(root, "link/f.txt"),
    ):
        with pytest.raises(PathError, match="symlink"):
            op()
    assert [p.name for p in outside.iterdir()] == ["f.txt"]
    assert (outside / "f.txt").read_text() == "keep"


def test_safefs_replaces_a_final_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    (outside / "target").write_text("keep")
    os.symlink(outside / "target", root / "d" / "f")
    assert safefs.read_entry(root, "d/f") == os.fsencode(outside / "target")
    safefs.write_bytes(root, "d/f", b"new")
    assert not (root / "d" / "f").is_symlink() and (root / "d" / "f").read_bytes() == b"new"
    assert (outside / "target").read_text() == "keep"
    (root / "d" / "g").write_text("g")
    os.chmod(root / "d" / "g", 0o755)
    safefs.write_bytes(root, "d/g", b"g2")
    assert os.stat(root / "d" / "g").st_mode & 0o777 == 0o755  # the mode is kept
    safefs.unlink(root, "d/f")
    assert not (root / "d" / "f").exists() and (outside / "target").exists()
    for bad in ("../x", "/etc/passwd", ""):
        with pytest.raises(PathError):
            safefs.write_bytes(root, bad, b"x")


def test_tool_reads_never_return_outside_content_while_a_folder_is_swapped(
    race: tuple[Path, Path],
) -> None:
    root, outside = race
    (outside / "mod.py").write_text("X = 'OUTSIDE-SECRET'\n")
    ctx = ToolContext(Workspace(root))
    registry = build_registry()
    seen = 0

    async def main() -> None:
        nonlocal seen
        for _ in range(TRIES):
            for name, args in (
                ("read_file", {"path": "pkg/mod.py"}),
                ("edit_file", {"path": "pkg/mod.py", "old_text": "OUTSIDE", "new_text": "IN"}),
            ):
                result = await registry.execute(name, args, ctx)
                assert "OUTSIDE-SECRET" not in result.text, (name, result.text)
                seen += result.ok and name == "read_file"

    asyncio.run(main())
    assert seen > 0  # some reads went through, from inside the workspace
    assert (outside / "mod.py").read_text() == "X = 'OUTSIDE-SECRET'\n"


def test_safefs_reads_the_same_file_again_and_refuses_links(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"one")
    for expected in (b"one", b"two"):
        (tmp_path / "d" / "f").write_bytes(expected)
        with safefs.open_read(tmp_path, "d/f") as fh:
            assert fh.read() == expected
    os.symlink("f", tmp_path / "d" / "l")
    with pytest.raises(PathError, match="symlink"):
        safefs.open_read(tmp_path, "d/l")
    with pytest.raises(PathError, match="regular file"):
        safefs.open_read(tmp_path, "d")


def test_repo_map_and_references_never_read_through_a_planted_link(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "pkg").mkdir(parents=True)
    outside.mkdir()
    (root / "pkg" / "mod.py").write_text("def inside_fn():\n    return outside_secret_fn\n")
    (outside / "secret.py").write_text("def outside_secret_fn():\n    return 'HOST-ONLY'\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)  # ls-files lists the link
    os.symlink(outside / "secret.py", root / "pkg" / "leak.py")  # what a sandbox could plant
    ctx = ToolContext(Workspace(root))
    registry = build_registry()
    for name, args in (
        ("repo_map", {}),
        ("find_symbol", {"name": "outside_secret_fn"}),
        ("find_symbol", {"name": "inside_fn"}),
    ):
        result = asyncio.run(registry.execute(name, args, ctx))
        assert "HOST-ONLY" not in result.text and "leak.py" not in result.text, result.text
    mapped = asyncio.run(registry.execute("repo_map", {}, ctx))
    assert "inside_fn" in mapped.text
