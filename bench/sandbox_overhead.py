"""Overhead of each sandbox backend for one `pytest -q` run of a small suite, against running it
directly on the host. Prints medians and ratios (goal: bwrap <= 1.1x; docker, which starts a
container of its own for every command, <= 1.3x plus its fixed start cost).

    .venv/bin/python bench/sandbox_overhead.py [--rounds 7] [--files 20] [--tests 10]

Rounds are interleaved (direct, bwrap, docker, direct, ...) so machine noise hits each alike.
Docker runs the image's own python/pytest; direct and bwrap run this venv's real interpreter
(`sys.executable`, refused if it is a shim script). Plugin
autoloading is off everywhere (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1) so host plugins do not skew the
comparison. A second table gives the fixed cost of one command (`true`) per backend.

Docker's image has its own python and pytest, so as root the benchmark also runs the suite
directly with the image's own files (the image exported to a folder, entered with chroot: same
binaries, no container, no limits) and gives the docker ratio against that baseline too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from k2lsp.sandbox.base import Sandbox, SandboxSettings, get_sandbox

PYTEST = "-m pytest -q -p no:cacheprovider"
COMMAND = f"python3 {PYTEST}"  # in the image: its own interpreter


def host_python() -> str:
    """The real host interpreter with pytest (this venv's binary), never a pyenv-style shim
    script, which would add its own start-up to every run and differ inside the sandbox."""
    exe = Path(sys.executable)
    with open(exe, "rb") as fh:
        if fh.read(2) == b"#!":
            raise SystemExit(f"{exe} is a script (a shim?); run with a real interpreter")
    return str(exe)


def host_command(command: str) -> str:
    """`command` with the image's `python3` replaced by the real host interpreter."""
    if command == COMMAND:
        return f"{shlex.quote(host_python())} {PYTEST}"
    return command


def make_suite(root: Path, files: int, tests: int) -> None:
    """A small pytest suite: `files` modules of `tests` passing tests each."""
    (root / "tests").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    for f in range(files):
        body = "".join(
            f"def test_{t}():\n    assert sum(range({t})) == {t * (t - 1) // 2}\n\n"
            for t in range(tests)
        )
        (root / "tests" / f"test_m{f}.py").write_text(body)


def timed(fn: Callable[[], int]) -> float:
    """Seconds one call of `fn` takes (it must return exit code 0)."""
    start = time.perf_counter()
    code = fn()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"benchmark command failed with exit code {code}")
    return elapsed


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--tests", type=int, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="k2lsp-bench-"))
    make_suite(root, args.files, args.tests)
    boxes: list[Sandbox] = []
    for kind in ("bwrap", "docker"):
        try:
            boxes.append(get_sandbox(kind, root, SandboxSettings()))
        except Exception as exc:  # a backend missing here: report and go on
            print(f"{kind}: unavailable ({exc})")
    image_root = export_image(root) if any(b.name == "docker" for b in boxes) else None
    for command in (COMMAND, "true"):
        measure(root, boxes, command, args.rounds, args.files * args.tests, image_root)
    if image_root is not None:
        shutil.rmtree(image_root, ignore_errors=True)
    for box in boxes:
        box.close()


def export_image(suite: Path) -> Path | None:
    """The sandbox image's files in a folder with a copy of the suite (root only), else None."""
    if os.geteuid() != 0:
        return None
    target = Path(tempfile.mkdtemp(prefix="k2lsp-bench-image-"))
    cid = subprocess.run(
        ["docker", "create", SandboxSettings().image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        export = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-C", str(target), "-xf", "-"], stdin=export.stdout, check=True)
        export.wait()
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True)
    shutil.copytree(suite, target / suite.relative_to("/"))
    return target


def measure(
    root: Path,
    boxes: list[Sandbox],
    command: str,
    rounds: int,
    n_tests: int,
    image_root: Path | None = None,
) -> None:
    """Print median times of `command` run directly and in each sandbox."""
    extra = {"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env = {**os.environ, **extra}

    def direct() -> int:
        return subprocess.run(
            host_command(command), shell=True, cwd=root, env=env, capture_output=True
        ).returncode

    runners: dict[str, Callable[[], int]] = {"direct": direct}
    if image_root is not None:
        chrooted = f"cd {shlex.quote(str(root))} && {command}"

        def direct_image() -> int:
            argv = [
                "chroot",
                str(image_root),
                "/usr/bin/env",
                "-i",
                "PATH=/usr/bin:/bin",
                *(f"{k}={v}" for k, v in extra.items()),
                "/bin/sh",
                "-c",
                chrooted,
            ]
            return subprocess.run(argv, capture_output=True).returncode

        runners["direct, image's files (chroot)"] = direct_image
    for box in boxes:
        cmd = command if box.name == "docker" else host_command(command)
        runners[box.name] = lambda box=box, cmd=cmd: (
            box.run(cmd, timeout_s=600, env=extra).exit_code
        )
    for name, fn in runners.items():  # warm-up: page cache, imports, container
        if fn() != 0 and command == COMMAND:
            print(f"WARNING: {name}: the suite exited non-zero; its times are not a clean run")
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            samples[name].append(timed(fn))
    base = statistics.median(samples["direct"])
    image_key = "direct, image's files (chroot)"
    image_base = statistics.median(samples[image_key]) if image_key in samples else None
    what = f"suite of {n_tests} tests" if command == COMMAND else "fixed cost of one command"
    print(f"{what}: `{command}`; {rounds} interleaved rounds, medians")
    for name, values in samples.items():
        med = statistics.median(values)
        label = "docker (container per command)" if name == "docker" else name
        versus = (
            f"   {med / image_base:5.2f}x direct with the image's files"
            if (name == "docker" and image_base)
            else ""
        )
        print(f"  {label:<40} {med * 1000:8.0f} ms   {med / base:5.2f}x direct{versus}")


if __name__ == "__main__":
    main()
