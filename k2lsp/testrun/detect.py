"""Which test runner a project uses, and the command that makes it print machine output."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from k2lsp.errors import UsageError

NPM_DEFAULT_TEST = "no test specified"
_SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "target", "build", "dist", "__pycache__"}


@dataclass
class Runner:
    """A runner and the command to run (`display` is what a user would type)."""

    name: str  # pytest | unittest | jest | vitest | npm | yarn | pnpm | go | cargo | make | custom
    command: str
    display: str
    junit: Path | None = None


def python_for(root: Path) -> str:
    """The interpreter to run Python tests with: the run copy's own venv, else python3."""
    for venv in (".venv", "venv"):
        if (root / venv / "bin" / "python").exists():
            return f"{venv}/bin/python"
    return "python3"


def build_runner(
    root: Path, scratch: Path, command: str | None = None, paths: list[str] | None = None
) -> Runner:
    """The runner for an explicit `command`, or the detected one, with `paths` appended."""
    base = command.strip() if command and command.strip() else detect_command(root)
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
        script = _package_json(root).get("scripts", {}).get("test", "")
        return "vitest" if "vitest" in script else "jest" if "jest" in script else words[0]
    if words[:2] == ["make", "test"]:
        return "make"
    return "custom"


def detect_command(root: Path) -> str:
    """The test command a developer would type in `root`, or UsageError when none is found."""
    for detector in (_python_command, _node_command, _go_command, _cargo_command, _make_command):
        cmd = detector(root)
        if cmd:
            return cmd
    raise UsageError(
        "no test runner detected (looked for pytest/unittest, package.json test script, go.mod, "
        "Cargo.toml, a Makefile `test` target); pass `command`, e.g. "
        'run_tests(command="pytest -q"), or set test_command in k2lsp.toml'
    )


def _python_command(root: Path) -> str | None:
    py = python_for(root)
    if _has_pytest_config(root):
        return f"{py} -m pytest -q"
    test_files = _python_test_files(root)
    if not test_files:
        return None
    uses_pytest = (
        any("pytest" in _head(f) for f in test_files[:50]) or (root / "conftest.py").exists()
    )
    requirements = " ".join(
        _head(root / n)
        for n in ("requirements-dev.txt", "requirements.txt", "setup.py", "setup.cfg", "tox.ini")
    )
    if uses_pytest or "pytest" in requirements:
        return f"{py} -m pytest -q"
    return f"{py} -m unittest discover -v"


def _has_pytest_config(root: Path) -> bool:
    if (root / "pytest.ini").exists() or (root / "conftest.py").exists():
        return True
    pyproject = root / "pyproject.toml"
    if pyproject.exists():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        if "pytest" in data.get("tool", {}):
            return True
    for name, section in (("setup.cfg", "[tool:pytest]"), ("tox.ini", "[pytest]")):
        if section in _head(root / name, 200_000):
            return True
    return False


def _python_test_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for pattern in ("test_*.py", "*_test.py"):
        for path in root.rglob(pattern):
            if not _SKIP_DIRS.intersection(path.relative_to(root).parts):
                out.append(path)
    return sorted(out)


def _head(path: Path, limit: int = 20_000) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return ""


def _package_json(root: Path) -> dict:  # type: ignore[type-arg]
    try:
        data = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _node_command(root: Path) -> str | None:
    pkg = _package_json(root)
    if not pkg:
        return None
    script = str(pkg.get("scripts", {}).get("test", ""))
    manager = (
        "pnpm"
        if (root / "pnpm-lock.yaml").exists()
        else "yarn"
        if (root / "yarn.lock").exists()
        else "npm"
    )
    if script and NPM_DEFAULT_TEST not in script:
        return f"{manager} test"
    deps = {**pkg.get("devDependencies", {}), **pkg.get("dependencies", {})}
    if "vitest" in deps:
        return "npx vitest run"
    if "jest" in deps:
        return "npx jest"
    return None


def _go_command(root: Path) -> str | None:
    return "go test ./..." if (root / "go.mod").exists() else None


def _cargo_command(root: Path) -> str | None:
    return "cargo test --no-fail-fast" if (root / "Cargo.toml").exists() else None


def _make_command(root: Path) -> str | None:
    for name in ("Makefile", "makefile", "GNUmakefile"):
        if re.search(r"^test\s*:", _head(root / name, 200_000), re.M):
            return "make test"
    return None
