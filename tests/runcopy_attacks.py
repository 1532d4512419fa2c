"""Attacks on the run copy (issue 10, items 1 and 3) for the sandbox campaign
(tests/sandbox_attacks.py, bench/attack_campaign.py): each returns whether it was contained.

- `attack_git_metadata`: code run in the sandbox plants hostile git metadata in the run copy
  (a `.git` folder with `core.fsmonitor`, hooks, pager, filters; a `.git` file pointing at one;
  a nested repository), then k2lsp's host side does everything it does with git after a
  command: the git tools, the test-file review, the end-of-run snapshot and a branch delivery.
  Contained when the planted command never ran on the host and the delivery still worked.
- `attack_write_race`: a sandbox command exchanges a run-copy folder with a symlink to a host
  folder non-stop while the file tools write into that folder. Contained when nothing outside
  the run copy was created, changed or removed.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2lsp.sandbox import SandboxSettings, get_sandbox

if TYPE_CHECKING:
    from tests.sandbox_attacks import Outcome

RACER = """
import ctypes, os, sys
os.symlink(sys.argv[1], ".spare")
libc = ctypes.CDLL(None, use_errno=True)
while True:  # renameat2(RENAME_EXCHANGE): `pkg` is always there, a folder or the link
    libc.renameat2(-100, b"pkg", -100, b".spare", 2)
"""
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"]


def _tool(ctx: Any, name: str, args: dict[str, Any]) -> Any:
    from k2lsp.tools import build_registry

    return asyncio.run(build_registry().execute(name, args, ctx))


def attack_git_metadata(kind: str, work: Path) -> Outcome:
    """Plant hostile git metadata from the sandbox; run every host-side git operation."""
    from k2lsp.agent.events import Outcome as RunOutcome
    from k2lsp.git import deliver
    from k2lsp.guards_tests import review_run_copy
    from k2lsp.runcopy import RunCopy
    from k2lsp.tools.base import ToolContext
    from tests.attack_helpers import planting_code
    from tests.sandbox_attacks import Outcome

    repo = work / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("def add(a, b):\n    return a + b\n")
    subprocess.run([*GIT, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "one"], cwd=repo, check=True)
    marker = work / "pwned"
    rc = RunCopy.create(repo, "attack", state_dir=work / "state")
    try:
        (rc.root / "plant.py").write_text(planting_code(marker))
        box = get_sandbox(kind, rc.root, SandboxSettings())
        try:
            planted = box.run("python3 plant.py && echo planted", timeout_s=120)
        finally:
            box.close()
        (rc.root / "app.py").write_text("def add(a, b):\n    return b + a\n")
        ctx = ToolContext(rc.workspace())
        for name, args in (("git_status", {}), ("git_diff", {}), ("git_log", {"n": 2})):
            _tool(ctx, name, args)
        review_run_copy(rc.root)
        delivery = deliver(rc, rc.changes(), "branch", task="attack")
    finally:
        rc.cleanup(keep_branch=True)
    ran = marker.exists()
    ok = "planted" in planted.output and not ran and delivery.outcome is RunOutcome.SUCCESS
    return Outcome(
        ok,
        (
            f"planted in sandbox: {'planted' in planted.output}; host ran planted command: {ran}; "
            f"branch delivery: {delivery.outcome.value}"
        ),
    )


def attack_write_race(kind: str, work: Path) -> Outcome:
    """A sandbox command swaps `pkg` with a link to a host folder while tools write into it."""
    from k2lsp.tools.base import ToolContext
    from k2lsp.workspace import Workspace
    from tests.sandbox_attacks import Outcome

    root, outside = work / "rc", work / "outside"
    (root / "pkg").mkdir(parents=True)
    outside.mkdir()
    for folder in (root / "pkg", outside):
        (folder / "mod.py").write_text("X = 0\n")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    (root / ".racer.py").write_text(RACER)  # exchanges pkg and a link to `outside`, non-stop
    box = get_sandbox(kind, root, SandboxSettings())
    done = threading.Event()
    racer = threading.Thread(
        target=lambda: (box.run(f"python3 .racer.py {outside}", timeout_s=20), done.set()),
        daemon=True,
    )
    ctx = ToolContext(Workspace(root))
    landed = tries = 0
    try:
        racer.start()
        time.sleep(2)  # the command is up and swapping
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not done.is_set():
            tries += 1
            for name, args in (
                ("create_file", {"path": f"pkg/n{tries}.py", "content": "N = 1\n"}),
                ("edit_file", {"path": "pkg/mod.py", "old_text": "X = ", "new_text": "X = 1 + "}),
            ):
                landed += bool(_tool(ctx, name, args).ok)
    finally:
        racer.join(60)
        box.close()
    after = {p.name: p.read_bytes() for p in outside.iterdir()}
    escaped = sorted(set(after) ^ set(before) | {n for n in before if after.get(n) != before[n]})
    return Outcome(
        not escaped,
        f"{2 * tries} racing writes, {landed} landed inside, outside changed: {escaped or 'none'}",
    )
