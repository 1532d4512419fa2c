"""Python test detection on the shapes people really have.

Order: the command the project declares (tox.ini `[testenv] commands`, hatch
`[tool.hatch.envs.*.scripts] test`), then pytest configuration (pytest.ini, `[tool.pytest]`,
`[tool:pytest]`, tox's `[pytest]`), then the style of the test files themselves: plain
`def test_…` functions, `import pytest` or a conftest.py mean pytest; files that are only
`unittest.TestCase` classes mean unittest, discovered with `-s DIR -t TOP` so a `tests/` folder
without `__init__.py` (or one under `src/`) is found. A declared dependency on pytest
(`[project.optional-dependencies]`, `[dependency-groups]`, requirements files, tox `deps`)
tips unittest-style suites to pytest. Coverage flags (`--cov…`) and other plugins'
flags (`-n`, `--timeout`, …) are dropped when the environment lacks the plugin, since they would
turn every run into a usage error.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {
    ".git",
    "node_modules",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "target",
    "build",
    "dist",
    "__pycache__",
    "site-packages",
    ".eggs",
}
_TEST_NAMES = re.compile(r"^(test_.*|.*_test|tests?)\.py$")
_PLAIN_TEST = re.compile(r"^(async\s+)?def test(?!_suite\b|_main\b)\w*\s*\(", re.M)
_TESTCASE = re.compile(r"\b(unittest\.)?(Isolated)?(Async)?TestCase\b|\bunittest\.main\(")
_PYTEST_WORDS = re.compile(r"^\s*(import pytest|from pytest\b)|@pytest\.", re.M)


@dataclass
class PyDetection:
    """The chosen command, why, and the next plausible one when it collects nothing."""

    command: str
    reason: str
    fallbacks: list[tuple[str, str]] = field(default_factory=list)  # (command, reason)


def test_files(root: Path, limit: int = 2000) -> list[Path]:
    """Python test files under `root` (skipping environments and build output)."""
    out: list[Path] = []
    for path in root.rglob("*.py"):
        if _TEST_NAMES.match(path.name) and not SKIP_DIRS.intersection(
            path.relative_to(root).parts[:-1]
        ):
            out.append(path)
            if len(out) >= limit:
                break
    return sorted(out)


def read_head(path: Path, limit: int = 200_000) -> str:
    """The first `limit` characters of a text file ("" when unreadable)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return ""


def _toml(root: Path) -> dict:  # type: ignore[type-arg]
    try:
        return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def _ini(path: Path) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(read_head(path))
    except configparser.Error:
        return None
    return parser


def has_pytest_config(root: Path) -> bool:
    """pytest.ini, `[tool.pytest…]` in pyproject, `[tool:pytest]` or tox's `[pytest]`."""
    if (root / "pytest.ini").exists() or (root / "conftest.py").exists():
        return True
    if "pytest" in _toml(root).get("tool", {}):
        return True
    return "[tool:pytest]" in read_head(root / "setup.cfg") or "[pytest]" in read_head(
        root / "tox.ini"
    )


def declared_deps(root: Path) -> str:
    """Every place a project names its test dependencies, as one lower-case text."""
    data = _toml(root)
    project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
    texts = [str(project.get("optional-dependencies", "")), str(data.get("dependency-groups", ""))]
    texts.append(str(data.get("tool", {}).get("hatch", {}).get("envs", "")))
    texts.append(str(data.get("tool", {}).get("poetry", {}).get("group", "")))
    for name in ("requirements-dev.txt", "requirements-test.txt", "test-requirements.txt"):
        texts.append(read_head(root / name))
    for req in (root / "requirements").glob("*.txt") if (root / "requirements").is_dir() else []:
        texts.append(read_head(req))
    texts += [
        read_head(root / "tox.ini"),
        read_head(root / "noxfile.py"),
        read_head(root / "setup.py"),
    ]
    cfg = _ini(root / "setup.cfg")
    if cfg is not None and cfg.has_section("options.extras_require"):
        texts.append(str(dict(cfg.items("options.extras_require"))))
    return "\n".join(texts).lower()


def _substitute_tox(line: str) -> str:
    """Expand tox substitutions: `{posargs:x}` -> x, `{envpython}` -> python, others dropped."""
    line = re.sub(r"\{posargs:([^}]*)\}", r"\1", line)
    line = re.sub(r"\{env:[^:}]+:([^}]*)\}", r"\1", line)
    line = line.replace("{envpython}", "python").replace("{posargs}", "")
    return re.sub(r"\S*\{[^}]*\}\S*", "", line).strip()


def tox_commands(root: Path) -> list[str]:
    """tox.ini `[testenv]` commands (factor-conditional lines dropped, substitutions done)."""
    cfg = _ini(root / "tox.ini")
    if cfg is None or not cfg.has_option("testenv", "commands"):
        return []
    raw = cfg.get("testenv", "commands").replace("\\\n", " ")
    out = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"^[\w,!-]+:\s", line):
            continue
        out.append(_substitute_tox(line))
    return [c for c in out if c]


def hatch_test_script(root: Path) -> str | None:
    """`[tool.hatch.envs.<env>.scripts] test` (a string or the first of a list)."""
    envs = _toml(root).get("tool", {}).get("hatch", {}).get("envs", {})
    for env in (envs.get("default", {}), *envs.values()) if isinstance(envs, dict) else ():
        script = env.get("scripts", {}).get("test") if isinstance(env, dict) else None
        if isinstance(script, list) and script:
            script = script[0]
        if isinstance(script, str) and script.strip():
            return re.sub(r"\{args(:[^}]*)?\}", "", script).strip()
    return None


def nox_commands(root: Path) -> list[str]:
    """`session.run("pytest", …)` / `session.run("python", "-m", "unittest", …)` calls of
    noxfile.py, as command lines (only literal string arguments; `*session.posargs` dropped)."""
    import ast

    try:
        tree = ast.parse(read_head(root / "noxfile.py", 1_000_000))
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run"
        ):
            continue
        words = [
            a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        if words and _runner_of(shlex.join(words)):
            out.append(shlex.join(words))
    return out


def _runner_of(command: str) -> tuple[str, list[str]] | None:
    """('pytest'|'unittest', args) for a declared command that runs one of them directly."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words:
        return None
    prog = words[0].rsplit("/", 1)[-1]
    if prog in ("pytest", "py.test"):
        return "pytest", words[1:]
    if re.fullmatch(r"python[0-9.]*", prog) and words[1:2] == ["-m"] and len(words) > 2:
        if words[2] in ("pytest", "unittest"):
            return words[2], words[3:]
    return None


# flag prefix -> (module the plugin installs, flags that take a separate value)
PLUGIN_FLAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "--cov": ("pytest_cov", ("--cov", "--cov-report", "--cov-config", "--cov-fail-under")),
    "--no-cov": ("pytest_cov", ()),
    "-n": ("xdist", ("-n",)),
    "--numprocesses": ("xdist", ("--numprocesses",)),
    "--dist": ("xdist", ("--dist",)),
    "--timeout": ("pytest_timeout", ("--timeout",)),
    "--reruns": ("pytest_rerunfailures", ("--reruns",)),
    "--benchmark": ("pytest_benchmark", ()),
    "--asyncio-mode": ("pytest_asyncio", ("--asyncio-mode",)),
    "--randomly": ("pytest_randomly", ()),
    "--mypy": ("pytest_mypy", ()),
    "--flake8": ("pytest_flake8", ()),
    "--black": ("pytest_black", ()),
    "--doctest-plus": ("pytest_doctestplus", ()),
}


def _plugin_of(arg: str) -> tuple[str, bool] | None:
    """(module, takes a separate value) of the plugin owning flag `arg`, None for others."""
    name = arg.split("=", 1)[0]
    for prefix, (module, valued) in PLUGIN_FLAGS.items():
        if (
            name == prefix
            or name.startswith(prefix + "-")
            or (prefix == "-n" and arg[:2] == "-n" and arg[2:].isdigit())
        ):
            return module, name in valued and "=" not in arg and name == arg
    return None


def drop_missing_plugin_flags(args: list[str], have: object = None) -> list[str]:
    """Arguments without the flags of plugins the environment lacks (`--cov=x`, `-n auto`,
    `--timeout 30`, …; `have(module)` says what is installed; None: nothing is)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            if not arg.startswith("-"):
                continue
        owner = _plugin_of(arg)
        if owner and not (callable(have) and have(owner[0])):
            skip = owner[1]
            continue
        if arg.startswith("--basetemp"):
            continue
        out.append(arg)
    return out


def drop_cov(args: list[str]) -> list[str]:
    """Arguments without pytest-cov's (and other absent plugins') flags."""
    return drop_missing_plugin_flags(args)


def style(files: list[Path]) -> str:
    """'pytest' (plain functions, pytest imports), 'unittest' (TestCase only) or ''."""
    saw_unittest = False
    for path in files[:200]:
        text = read_head(path)
        if _PYTEST_WORDS.search(text) or _PLAIN_TEST.search(text):
            return "pytest"
        saw_unittest = saw_unittest or bool(_TESTCASE.search(text))
    return "unittest" if saw_unittest else ""


def unittest_discover(root: Path, files: list[Path], py: str) -> str:
    """`python -m unittest discover -s DIR -t TOP` for where the test files are."""
    dirs = sorted({f.parent for f in files}, key=lambda d: len(d.parts))
    start = dirs[0] if dirs else root
    for d in dirs[1:]:
        while start not in (d, *d.parents) and start != root:
            start = start.parent
    top = start
    while (top / "__init__.py").exists() and top != root:
        top = top.parent
    rel = lambda p: p.relative_to(root).as_posix() or "."  # noqa: E731
    pattern = ' -p "test*.py"' if any(f.name in ("tests.py", "test.py") for f in files) else ""
    if start == root:
        return f"{py} -m unittest discover -v -s . -t .{pattern}"
    return f"{py} -m unittest discover -v -s {rel(start)} -t {rel(top)}{pattern}"


def configured_addopts(root: Path) -> str | None:
    """pytest's configured `addopts` (None when pytest is not configured with any)."""
    ini = root / "pytest.ini"
    if ini.exists():
        return _ini_value(ini, "pytest", "addopts")
    opts = _toml(root).get("tool", {}).get("pytest", {}).get("ini_options", {}).get("addopts")
    if opts is not None:
        return " ".join(opts) if isinstance(opts, list) else str(opts)
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        value = _ini_value(root / name, section, "addopts")
        if value is not None:
            return value
    return None


def _ini_value(path: Path, section: str, key: str) -> str | None:
    cfg = _ini(path)
    if cfg is None or not cfg.has_option(section, key):
        return None
    return " ".join(cfg.get(section, key).split())


def addopts_without_missing_plugins(root: Path, have: object) -> str:
    """` -o addopts=…` dropping flags of plugins the environment lacks ('' when not needed)."""
    opts = configured_addopts(root)
    if not opts:
        return ""
    try:
        words = shlex.split(opts)
    except ValueError:
        return ""
    kept = drop_missing_plugin_flags(words, have)
    if kept == words:
        return ""
    return " -o " + shlex.quote("addopts=" + " ".join(kept))


def detect(root: Path, py: str, has_module: object) -> PyDetection | None:
    """The Python test command for `root` with interpreter `py`, or None when it has no tests.

    `has_module(name) -> bool` says whether the environment can import a module.
    """
    files = test_files(root)
    have = has_module if callable(has_module) else (lambda _n: False)
    declared = [r for r in map(_runner_of, [*tox_commands(root), *nox_commands(root)]) if r]
    hatch = hatch_test_script(root)
    if hatch and _runner_of(hatch):
        declared.insert(0, _runner_of(hatch))  # type: ignore[arg-type]
    pytest_cmd = f"{py} -m pytest -q" + addopts_without_missing_plugins(root, have)
    found = style(files)
    unit_cmd = unittest_discover(root, files, py) if files else ""
    if declared:
        name, args = declared[0]
        if name == "pytest":
            args = drop_missing_plugin_flags(args, have)
            cmd = " ".join([pytest_cmd, *map(shlex.quote, args)])
            return PyDetection(cmd, "tox/nox/hatch declare pytest", _unit_fallback(unit_cmd))
        cmd = " ".join([f"{py} -m unittest", *map(shlex.quote, args)]).strip()
        if not args or args == ["-v"]:
            cmd = unit_cmd or cmd
        return PyDetection(cmd, "tox/nox declare unittest", [(pytest_cmd, "pytest")])
    if has_pytest_config(root):
        return PyDetection(pytest_cmd, "pytest is configured", _unit_fallback(unit_cmd))
    if not files:
        return None
    if found == "pytest":
        odd = sorted({f.name for f in files if f.name in ("tests.py", "test.py")})
        if odd:  # pytest's default python_files would skip them
            names = " ".join(["test_*.py", "*_test.py", *odd])
            pytest_cmd += " -o " + shlex.quote(f"python_files={names}")
        return PyDetection(pytest_cmd, "plain test functions", _unit_fallback(unit_cmd))
    wants_pytest = "pytest" in declared_deps(root) and have("pytest")
    if found == "unittest" and not wants_pytest:
        fb = [(pytest_cmd, "pytest")] if have("pytest") else []
        return PyDetection(unit_cmd, "unittest.TestCase tests", fb)
    if have("pytest"):
        return PyDetection(pytest_cmd, "pytest is available", _unit_fallback(unit_cmd))
    return PyDetection(unit_cmd, "pytest is not installed", [])


def _unit_fallback(unit_cmd: str) -> list[tuple[str, str]]:
    return [(unit_cmd, "unittest")] if unit_cmd else []
