"""JavaScript/TypeScript test detection: package.json `scripts.test` resolved to the command
that actually runs the tests.

`npm test` in a sandbox runs `pretest`/`posttest` hooks (builds, audits that need the
network) and chains such as `npm run lint && nyc tape …` whose linters and coverage wrappers
are not tests. The script is resolved instead: `npm run X` / `yarn X` / `pnpm X` expand to
script X, linters and auditors are dropped, coverage wrappers (`nyc`, `c8`) unwrapped, and
what remains runs directly with `node_modules/.bin` on PATH. When the script cannot be
resolved, `npm test --ignore-scripts` runs it without its hooks. Without a script the
dependencies decide (vitest, jest, mocha), then `node --test` for files importing `node:test`.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

NPM_DEFAULT_TEST = "no test specified"
LINTERS = {
    "eslint",
    "standard",
    "xo",
    "prettier",
    "tsc",
    "tslint",
    "aud",
    "npmignore",
    "snazzy",
    "semistandard",
    "biome",
    "attw",
    "publint",
    "dtslint",
    "tsd",
    "check-dts",
    "size-limit",
}
WRAPPERS = {"nyc", "c8", "cross-env"}
RUNNERS = {
    "tape": "tap",
    "tap": "tap",
    "mocha": "mocha",
    "jest": "jest",
    "vitest": "vitest",
    "ava": "tap",
    "node": "node",
}


def package_json(root: Path) -> dict:  # type: ignore[type-arg]
    """The parsed package.json ({} when absent or unreadable)."""
    try:
        data = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _scripts(pkg: dict) -> dict[str, str]:  # type: ignore[type-arg]
    scripts = pkg.get("scripts", {})
    return {k: str(v) for k, v in scripts.items()} if isinstance(scripts, dict) else {}


def _manager(root: Path) -> str:
    if (root / "pnpm-lock.yaml").exists():
        return "pnpm"
    return "yarn" if (root / "yarn.lock").exists() else "npm"


def resolve_script(scripts: dict[str, str], name: str, depth: int = 0) -> list[str] | None:
    """The test commands behind script `name` (None when it cannot be resolved safely)."""
    if depth > 5 or name not in scripts:
        return None
    out: list[str] = []
    for part in re.split(r"\s*&&\s*", scripts[name].strip()):
        if re.search(r"[;|`$<>]|\|\|", part):
            first = part.split()[0] if part.split() else ""
            if first in LINTERS:
                continue
            return None
        try:
            words = shlex.split(part)
        except ValueError:
            return None
        words = _unwrap(words)
        if not words:
            continue
        if words[0] in ("npm", "pnpm", "yarn"):
            rest = words[1:]
            if rest[:1] in (["run"], ["run-script"]):
                rest = rest[1:]
            if not rest or (len(rest) > 1 and rest[1] != "--"):
                return None
            sub = resolve_script(
                scripts, "test" if rest[0] in ("test", "t") else rest[0], depth + 1
            )
            if sub is None:
                return None
            out += sub
            continue
        if words[0] in LINTERS or re.match(r"(lint|format|build|prepare)", words[0]):
            continue
        out.append(shlex.join(words))
    return out


def _unwrap(words: list[str]) -> list[str]:
    """`nyc --reporter=x tape t.js` -> `tape t.js` (coverage and env wrappers dropped)."""
    while words and words[0] in WRAPPERS:
        rest = words[1:]
        idx = next((i for i, w in enumerate(rest) if w in RUNNERS or w in ("npm", "yarn")), None)
        if idx is None:
            return []
        words = rest[idx:]
    return words


def runner_family(command: str) -> str:
    """tap | mocha | jest | vitest | node-test | npm | custom, from a command line."""
    if re.search(r"\bnode\b.*--test\b", command):
        return "node-test"
    for word in re.split(r"\s+|&&", command):
        name = word.rsplit("/", 1)[-1]
        if name in RUNNERS and name != "node":
            return RUNNERS[name]
    return "custom"


def detect(root: Path) -> tuple[str, str] | None:
    """(command, reason) for a JavaScript project, or None when `root` is not one."""
    pkg = package_json(root)
    if not pkg:
        return None
    scripts = _scripts(pkg)
    script = scripts.get("test", "")
    if script and NPM_DEFAULT_TEST not in script:
        parts = resolve_script(scripts, "test")
        if parts:
            cmd = " && ".join(_machine_flags(p) for p in parts)
            return cmd, f"package.json scripts.test ({script!r}) without hooks and linters"
        return f"{_manager(root)} test --ignore-scripts", "package.json scripts.test (no hooks)"
    deps = {**pkg.get("devDependencies", {}), **pkg.get("dependencies", {})}
    if "vitest" in deps:
        return "vitest run", "vitest is a dependency"
    if "jest" in deps:
        return "jest --ci", "jest is a dependency"
    if "mocha" in deps:
        return "mocha", "mocha is a dependency"
    if _uses_node_test(root):
        return "node --test --test-reporter=tap", "files import node:test"
    return None


def _machine_flags(command: str) -> str:
    """Ask for machine-readable output where the runner allows it without losing text."""
    if runner_family(command) == "node-test" and "--test-reporter" not in command:
        return command.replace("--test", "--test --test-reporter=tap", 1)
    return command


def _uses_node_test(root: Path) -> bool:
    for path in list(root.glob("test/**/*.*js"))[:200] + list(root.glob("*.test.*js"))[:50]:
        try:
            if "node:test" in path.read_text(encoding="utf-8", errors="replace")[:20000]:
                return True
        except OSError:
            continue
    return False
