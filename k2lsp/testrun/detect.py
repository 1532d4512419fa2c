"""Which test runner a project uses, and the command that makes it print machine output."""

from __future__ import annotations

import re
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from k2lsp.errors import UsageError
from k2lsp.testrun import jsdetect, pydetect
from k2lsp.testrun.env import has_module, venv_in

NPM_DEFAULT_TEST = jsdetect.NPM_DEFAULT_TEST


@dataclass
class Runner:
    """A runner and the command to run (`display` is what a user would type)."""

    name: str  # pytest | unittest | jest | vitest | npm | yarn | pnpm | go | cargo | make | custom
    command: str
    display: str
    junit: Path | None = None


def python_for(root: Path, binds: list[tuple[str, str]] | None = None) -> str:
    """The interpreter to run Python tests with: the project's venv (bound into the run copy
    or inside it), else python3."""
    found = venv_in(root, binds or [])
    return found[0] if found else "python3"


@dataclass
class Detection:
    """The detected command, why it was chosen, and runners to try when it collects nothing."""

    command: str
    reason: str
    fallbacks: list[tuple[str, str]] = field(default_factory=list)


def detect(root: Path, binds: list[tuple[str, str]] | None = None) -> Detection:
    """The test command a developer would type in `root`, or UsageError when none is found."""
    found = venv_in(root, binds or [])
    py = found[0] if found else "python3"
    prefix = found[1] if found else None
    pyd = pydetect.detect(root, py, lambda name: has_module(prefix, name))
    if pyd is not None:
        return Detection(pyd.command, pyd.reason, pyd.fallbacks)
    js = jsdetect.detect(root)
    if js is not None:
        return Detection(js[0], js[1])
    for detector in (_go_command, _cargo_command, _make_command):
        cmd = detector(root)
        if cmd:
            return Detection(cmd, "declared by the project")
    raise UsageError(
        "no test runner detected (looked for pytest/unittest/tox/hatch, package.json test "
        "script, node:test, go.mod, Cargo.toml, a Makefile `test` target); pass `command`, e.g. "
        'run_tests(command="pytest -q"), or set test_command in k2lsp.toml'
    )


def detect_command(root: Path, binds: list[tuple[str, str]] | None = None) -> str:
    """The detected test command for `root` (UsageError when none is found)."""
    return detect(root, binds).command


def build_runner(
    root: Path,
    scratch: Path,
    command: str | None = None,
    paths: list[str] | None = None,
    binds: list[tuple[str, str]] | None = None,
) -> Runner:
    """The runner for an explicit `command`, or the detected one, with `paths` appended."""
    base = command.strip() if command and command.strip() else detect_command(root, binds)
    quoted = " ".join(shlex.quote(p) for p in paths or [])
    display = f"{base} {quoted}".strip()
    name = runner_name(base, root)
    if name == "pytest":
        junit = scratch / f"junit-{uuid.uuid4().hex[:12]}.xml"
        extra = f" -p no:cacheprovider --junitxml={shlex.quote(str(junit))} -o junit_family=xunit1"
        return Runner(name, _insert_flags(base, extra, quoted), display, junit)
    if name == "go" and "-json" not in base:
        return Runner(
            name, f"{re.sub(r'go test', 'go test -json', base, count=1)} {quoted}".strip(), display
        )
    return Runner(name, display, display)


def _insert_flags(base: str, extra: str, quoted: str) -> str:
    """Add flags before any `--` of the base command (so they reach the runner), then paths."""
    head, sep, tail = base.partition(" -- ")
    cmd = head + extra + (sep + tail if sep else "")
    return f"{cmd} {quoted}".strip()


def runner_name(command: str, root: Path) -> str:
    """Runner family of a shell command (for choosing the output parser)."""
    words = command.split()
    text = " ".join(words)
    if re.search(r"(^|[\s/])(py\.?test)(\s|$)|-m pytest\b", text):
        return "pytest"
    if "-m unittest" in text:
        return "unittest"
    if re.search(r"(^|\s)go test\b", text):
        return "go"
    if re.search(r"(^|\s)cargo (\+\S+ )?test\b", text):
        return "cargo"
    if re.search(r"\bvitest\b", text):
        return "vitest"
    if re.search(r"\bjest\b", text):
        return "jest"
    if words and words[0] in ("npm", "yarn", "pnpm"):
        script = jsdetect.package_json(root).get("scripts", {}).get("test", "")
        family = jsdetect.runner_family(str(script))
        return family if family != "custom" else words[0]
    family = jsdetect.runner_family(text)
    if family != "custom":
        return family
    if words[:2] == ["make", "test"]:
        return "make"
    return "custom"


def _go_command(root: Path) -> str | None:
    return "go test ./..." if (root / "go.mod").exists() else None


def _cargo_command(root: Path) -> str | None:
    return "cargo test --no-fail-fast" if (root / "Cargo.toml").exists() else None


def _make_command(root: Path) -> str | None:
    for name in ("Makefile", "makefile", "GNUmakefile"):
        if re.search(r"^test\s*:", pydetect.read_head(root / name), re.M):
            return "make test"
    return None
