"""Dependencies are declared as used: every third-party module k2lsp imports (statically, or by
name like the tree-sitter grammars) comes from a distribution `pyproject.toml` declares, every
declared runtime dependency is used, and each has an upper bound (a new major cannot arrive
untested)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "k2lsp"
# Declared but never imported, with the reason: the wheel ships a binary k2lsp runs.
BINARY_ONLY = {"ripgrep": "k2lsp/code/filelist.py runs the wheel's `rg`"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, str]:
    """Runtime dependency name -> its specifier."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for req in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", req)
        assert name is not None, req
        out[_norm(name.group())] = req[name.end() :].strip()
    return out


def _imported() -> dict[str, str]:
    """Top-level third-party module -> a file importing it (static imports and the grammar
    modules `k2lsp.code.languages` loads by name)."""
    from k2lsp.code.languages import _GRAMMARS

    found: dict[str, str] = {mod: "k2lsp/code/languages.py" for mod, _ in _GRAMMARS.values()}
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "demo" / "example") in path.parents:
            continue  # the demo's sample project is data
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("k2lsp", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_is_declared_and_every_declared_one_used() -> None:
    declared = _declared()
    dists = packages_distributions()
    used: set[str] = set()
    undeclared = []
    for module, where in sorted(_imported().items()):
        owners = {_norm(d) for d in dists.get(module, [module])}
        if not owners & set(declared):
            undeclared.append(f"{module} ({where}; distribution {sorted(owners)})")
        used |= owners
    assert undeclared == [], "imported but not declared in pyproject.toml"
    unused = set(declared) - used - set(BINARY_ONLY)
    assert unused == set(), "declared in pyproject.toml but never imported"
    filelist = (ROOT / "k2lsp/code/filelist.py").read_text()
    assert "ripgrep" in filelist and "rg_binary" in filelist


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    unbounded = [f"{n}{spec}" for n, spec in _declared().items() if "<" not in spec]
    assert unbounded == []
