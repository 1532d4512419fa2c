"""Writes racing a folder->symlink swap: how many land outside the workspace.

A racer process atomically exchanges `pkg/` with a symlink to `outside/` (`renameat2` with
`RENAME_EXCHANGE`, as fast as it can) while writes
go to `pkg/f_<i>.py`. "by path" is the check-then-write k2lsp used before issue 10 (resolve and
confine the path, then `mkstemp` in its folder + `os.replace` by path); "safefs" is what every
tool uses now (folder descriptors, `O_NOFOLLOW`, `renameat`). Prints escapes per method.

    python bench/race_writes.py [tries]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from k2lsp import safefs
from k2lsp.errors import PathError
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


def gate(rel: str, data: bytes) -> None:
    """What the tools do between the check and the write (the syntax gate parses the file)."""
    from k2lsp.code.gate import check_edit

    check_edit(rel, None, data.decode())


def by_path(ws: Workspace, rel: str, data: bytes) -> None:
    """The pre-issue-10 write: confine, then write by path."""
    path = ws.resolve(rel)
    gate(rel, data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".w.", suffix=".k2tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def with_safefs(ws: Workspace, rel: str, data: bytes) -> None:
    """Today's write: confine, then write through folder descriptors."""
    ws.resolve(rel)
    gate(rel, data)
    safefs.write_bytes(ws.root, rel, data)


def trial(write: Callable[[Workspace, str, bytes], None], tries: int) -> tuple[int, int, int]:
    """(escaped, written inside, refused) for `tries` racing writes."""
    with tempfile.TemporaryDirectory(prefix="k2lsp-race-") as tmp:
        root, outside = Path(tmp) / "ws", Path(tmp) / "outside"
        (root / "pkg").mkdir(parents=True)
        outside.mkdir()
        racer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACER,
                str(root / "pkg"),
                str(Path(tmp) / "spare"),
                str(outside),
                str(Path(tmp) / "ready"),
            ]
        )
        while not (Path(tmp) / "ready").exists():
            time.sleep(0.01)
        ws = Workspace(root)
        ok = refused = 0
        try:
            for i in range(tries):
                try:
                    write(ws, f"pkg/f_{i}.py", b"x = 1\n")
                    ok += 1
                except (OSError, PathError):
                    refused += 1
        finally:
            racer.kill()
            racer.wait()
        escaped = sum(1 for p in outside.iterdir())
        return escaped, ok - escaped, refused


def main() -> None:
    """Print the table."""
    tries = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"{'method':<10} {'tries':>6} {'escaped':>8} {'inside':>7} {'refused':>8}")
    for name, fn in (("by path", by_path), ("safefs", with_safefs)):
        escaped, inside, refused = trial(fn, tries)
        print(f"{name:<10} {tries:>6} {escaped:>8} {inside:>7} {refused:>8}")


if __name__ == "__main__":
    main()
