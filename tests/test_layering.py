"""The package layering holds mechanically: imports only go downward, no package cycles.

Every import in k2lsp (module level and inside functions, `TYPE_CHECKING` blocks included,
relative imports, and module names in strings that `importlib` loads such as the CLI's
sub-command table) is read with `ast`; an import of a higher layer, or of a package of the same
layer, fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "k2lsp"

# Lower number = lower layer. A module may import its own package and any lower layer.
LAYERS: dict[str, int] = {
    "errors": 0,
    "fs": 1,
    "redact": 1,
    "config": 2,
    "model": 3,
    "sandbox": 3,
    "code": 3,
    "runs": 4,
    "testrun": 4,
    "lspc": 4,
    "tools": 5,
    "agent": 6,
    "fake": 7,
    "health": 7,
    "server": 8,
    "acp": 8,
    "cli": 9,
    "demo": 10,
    "__main__": 11,
}
TOP_LEVEL_ALLOWED = {"__init__", "__main__", "errors", "redact"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "k2lsp"


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every product module; the demo's sample project is data."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "demo" / "example") in path.parents:
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


def _is_module(dotted: str) -> bool:
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path, module: str = "") -> list[tuple[int, str]]:
    """Every k2lsp module `path` (the module called `module`) imports: import statements
    (relative ones resolved) and strings naming a module (`"k2lsp.x.y"`, `"k2lsp.x.y:func"`),
    which `importlib` loads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if not module:
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    here = module.split(".")[:-1]  # the package a relative import starts from
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = ".".join(here[: len(here) - node.level + 1])
            mod = f"{base}.{node.module}" if node.module else base
            found += [(node.lineno, mod if node.module else f"{mod}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            target = node.value.split(":", 1)[0]
            if target.startswith("k2lsp.") and _is_module(target):
                found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "k2lsp":
                found += [(node.lineno, f"k2lsp.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(n, m) for n, m in found if m.startswith("k2lsp.")]


def test_every_top_level_module_is_allowed() -> None:
    extra = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_LEVEL_ALLOWED)
    assert extra == [], f"top-level modules outside a package: {extra}"


def test_every_package_has_a_layer() -> None:
    units = {_unit(m) for m, _ in _modules()} - {"k2lsp"}
    assert units <= set(LAYERS), f"packages without a layer: {sorted(units - set(LAYERS))}"


def test_imports_only_go_down() -> None:
    bad = []
    for module, path in _modules():
        src = _unit(module)
        if src == "k2lsp":
            continue
        for line, target in _imports(path):
            dst = _unit(target)
            if dst in {src, "__version__"} or target == "k2lsp.__version__":
                continue
            if dst not in LAYERS:
                continue
            if LAYERS[dst] >= LAYERS[src]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {src} -> {target}")
    assert bad == [], "upward or sideways imports:\n" + "\n".join(bad)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        src = _unit(module)
        for _, target in _imports(path):
            dst = _unit(target)
            if dst != src and dst in LAYERS:
                graph.setdefault(src, set()).add(dst)
    return graph


def test_no_cycle_between_packages() -> None:
    graph = _graph()
    seen: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in seen:
                visit(nxt, [*stack, nxt])
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("limit", [400])
def test_no_module_over_limit(limit: int) -> None:
    long = []
    for module, path in _modules():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            long.append(f"{module}: {n} lines")
    assert long == [], "modules over the limit:\n" + "\n".join(long)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from k2lsp.agent.loop import run\n", "k2lsp.agent.loop"),
        ("from ..agent.loop import run\n", "k2lsp.agent.loop"),
        ("from .. import agent\n", "k2lsp.agent"),
        ("HOOKS = {'x': 'k2lsp.agent.loop:run'}\n", "k2lsp.agent.loop"),
    ],
)
def test_the_checker_sees_an_upward_import(tmp_path: Path, source: str, expected: str) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
    assert [m for _, m in _imports(probe, "k2lsp.tools.probe")] == [expected]


def test_strings_that_name_no_module_are_not_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("CMD = 'k2lsp.undo'\nFILE = 'k2lsp.toml'\n")
    assert _imports(probe, "k2lsp.tools.probe") == []
