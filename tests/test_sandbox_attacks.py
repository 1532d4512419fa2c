"""The sandbox attack suite (issue 10, items 2, 5, 6, 7): every attack against real bwrap and
real docker, as the user running the tests (root in CI) and as an ordinary user."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.sandbox_attacks import SLUGS, Outcome, run_as_user, run_attack

KINDS = [
    pytest.param("bwrap", marks=pytest.mark.bwrap),
    pytest.param("docker", marks=pytest.mark.docker),
]


def _check(outcome: Outcome) -> None:
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.contained, outcome.detail


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attack", sorted(SLUGS))
def test_attack_is_contained_as_the_current_user(attack: str, kind: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _check(run_attack(attack, kind, work))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attack", sorted(SLUGS))
def test_attack_is_contained_as_an_ordinary_user(attack: str, kind: str) -> None:
    _check(run_as_user(attack, kind))


def test_handover_never_follows_symlinks_swapped_in_during_the_walk(tmp_path: Path) -> None:
    """Items 2/3 at the file-system level: a racing process swaps files and folders for symlinks
    to host files while the run copy is handed over and back; the host files never change."""
    from k2lsp.sandbox.owner import SANDBOX_UID, hand_back, hand_over

    if os.geteuid() != 0:
        pytest.skip("handing a run copy to another uid needs root (as a user nothing is chowned)")
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret"
    secret.write_text("s")
    secret.chmod(0o600)
    before = secret.stat()
    root = tmp_path / "rc"
    root.mkdir()
    names = [f"f{i}" for i in range(50)]
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            for name in names:
                path = root / name
                try:
                    path.unlink(missing_ok=True)
                    path.symlink_to(secret if len(name) % 2 else host)
                    path.unlink()
                    (path.mkdir if name.endswith("7") else path.touch)()
                except OSError:
                    continue
                if name.endswith("7"):
                    path.rmdir()

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            hand_back(hand_over(root), SANDBOX_UID)
    finally:
        stop.set()
        thread.join()
    after = secret.stat()
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )
    assert host.stat().st_uid == 0


CONFTEST_SWAP = """
import os

def pytest_unconfigure(config):
    path = config.option.xmlpath
    if path and os.path.exists(path):
        os.unlink(path)
        if {fifo}:
            os.mkfifo(path)
        else:
            os.symlink({target!r}, path)
"""


@pytest.mark.bwrap
@pytest.mark.parametrize("fifo", [False, True], ids=["symlink", "fifo"])
def test_a_test_report_swapped_for_a_symlink_or_fifo_is_not_followed(
    fifo: bool, tmp_path: Path
) -> None:
    """Hostile test code replaces the JUnit report k2lsp reads with a symlink to a host file
    (or a FIFO that would block the host forever): the host reads neither."""
    from k2lsp.sandbox.base import SandboxSettings
    from k2lsp.testrun.runner import run_tests
    from tests.sandbox_helpers import open_sandbox

    host = tmp_path / "host-secret.xml"
    host.write_text('<testsuite tests="99" failures="0"><testcase name="leak" /></testsuite>')
    root = tmp_path / "rc"
    root.mkdir()
    (root / "conftest.py").write_text(CONFTEST_SWAP.format(fifo=fifo, target=str(host)))
    (root / "test_a.py").write_text("def test_a():\n    assert True\n")
    with open_sandbox("bwrap", root, SandboxSettings()) as box:
        report = run_tests(box, command="python3 -m pytest -q", timeout_s=120)
    assert report.parsed_from != "junit"
    assert "leak" not in str(report)
    assert report.passed == 1  # from the summary line instead


@pytest.mark.parametrize("parent", ["/opt", "/root"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_run_copy_under_a_folder_only_root_may_enter_works_as_root(
    kind: str, parent: str
) -> None:
    """Issue 11: as root the run copy lives under /root (0700); the unprivileged sandbox user
    must still reach, import and write it, without any host folder's mode being changed.
    Under /root the image has its own 0700 /root too, which a covering tmpfs would inherit."""
    import shutil
    import tempfile

    from k2lsp.sandbox.base import SandboxSettings
    from tests.sandbox_helpers import open_sandbox

    if os.geteuid() != 0:
        pytest.skip("as an ordinary user the run copy is the user's own")
    private = Path(tempfile.mkdtemp(prefix="k2lsp-private-", dir=parent))  # 0700, like /root
    try:
        root = private / "state" / "runs" / "r1" / "proj"
        root.mkdir(parents=True)
        (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        (root / "test_calc.py").write_text(
            "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
        )
        with open_sandbox(kind, root, SandboxSettings()) as box:
            # any python3 (bwrap uses the host's, whose pytest may sit under /root itself)
            res = box.run(
                "python3 -c 'from calc import add; assert add(2, 3) == 5; print(\"1 passed\")'"
                " && touch made",
                timeout_s=300,
            )
        assert res.exit_code == 0, res.output
        assert "1 passed" in res.output
        assert (root / "made").stat().st_uid == 0  # handed back
        assert oct(private.stat().st_mode & 0o777) == "0o700"
    finally:
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("folder", ["/", "/etc", "~"])
def test_root_never_hands_a_system_or_home_folder_to_the_sandbox_user(
    kind: str, folder: str
) -> None:
    from k2lsp.errors import UsageError
    from k2lsp.sandbox.base import SandboxSettings
    from tests.sandbox_helpers import open_sandbox

    if os.geteuid() != 0:
        pytest.skip("only root hands folders over")
    target = Path(folder).expanduser()
    before = target.stat()
    with pytest.raises(UsageError, match="refusing"):
        open_sandbox(kind, target, SandboxSettings()).run("true", timeout_s=60)
    assert target.stat().st_uid == before.st_uid
