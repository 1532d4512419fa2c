"""Parses and time per structural edit: `replace_symbol` / `insert_code` through the real tools
registry, each followed by a `find_symbol` (the repo map refresh of the edited file), as an
agent does between edits.

Parses are counted the same way on both sides, by wrapping the parser factory every parse goes
through (`k2lsp.code.parse.get_parser`): "file" parses are of a whole file text (old or new),
"fragment" parses of the model's code alone (its multi-line strings are located so they are
never re-indented). Time is wall time per tool call, median over the edits of a round.

"before" is another revision's code (default: `main`), exported with `git archive` into a
temporary directory; "after" is this checkout. Each side runs in its own process with its
tree first on `sys.path`; rounds alternate (before, after, before, after, ...).

    .venv/bin/python bench/edit_parses.py [--before main] [--rounds 3] [--edits 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revtree import export

ROOT = Path(__file__).resolve().parents[1]


def _python_file(n: int) -> str:
    parts = ["import os\n\n"]
    for i in range(n):
        parts.append(
            f"\ndef func_{i}(a, b):\n"
            f'    """Function {i}."""\n'
            f"    total = a + b * {i}\n"
            f"    for k in range({i % 7 + 1}):\n"
            f"        total += k\n"
            f"    return total\n\n"
        )
    return "".join(parts)


def _js_file(n: int) -> str:
    return "".join(
        f"export function fn{i}(a, b) {{\n  let t = a + b * {i};\n  return t;\n}}\n\n"
        for i in range(n)
    )


def worker(edits: int, size: int) -> dict[str, Any]:
    """Run the edits with whatever `k2lsp` is first on sys.path; return the figures."""
    try:  # the package layout, or the flat one of older revisions
        from k2lsp.runs.workspace import Workspace
    except ImportError:
        from k2lsp.workspace import Workspace  # type: ignore[no-redef]

    from k2lsp.code import parse as parse_mod
    from k2lsp.tools import build_registry
    from k2lsp.tools.base import ToolContext

    seen: list[bytes] = []
    real = parse_mod.get_parser

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def parse(self, data: bytes, *a: Any) -> Any:
            seen.append(bytes(data))
            return self.inner.parse(data, *a)

    parse_mod.get_parser = lambda lang: Counting(real(lang))  # type: ignore[assignment]

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(root / ".xdg")
        repo = root / "repo"
        repo.mkdir()
        (repo / "mod.py").write_text(_python_file(size))
        (repo / "mod.js").write_text(_js_file(size))
        registry = build_registry()
        ctx = ToolContext(workspace=Workspace(repo))

        async def call(tool: str, **args: Any) -> float:
            t0 = time.perf_counter()
            res = await registry.execute(tool, args, ctx)
            took = time.perf_counter() - t0
            if not res.ok:
                raise SystemExit(f"{tool} failed: {res.text}")
            return took

        async def scenario(path: str, make: Any) -> dict[str, Any]:
            await call("find_symbol", name="func_0" if path.endswith(".py") else "fn0")
            file_parses = frag_parses = 0
            times: list[float] = []
            cycles: list[float] = []
            for i in range(edits):
                tool, args, snippet = make(i)
                seen.clear()
                times.append(await call(tool, path=path, **args))
                lookup = await call("find_symbol", name=args.get("symbol") or "fn0", path=path)
                cycles.append(times[-1] + lookup)
                frag = sum(1 for d in seen if d == snippet.encode())
                frag_parses += frag
                file_parses += len(seen) - frag
            return {
                "file_parses_per_edit": file_parses / edits,
                "fragment_parses_per_edit": frag_parses / edits,
                "ms_per_edit": statistics.median(times) * 1000,
                "ms_per_cycle": statistics.median(cycles) * 1000,
            }

        def py_replace(i: int) -> tuple[str, dict[str, Any], str]:
            code = f"def func_{i}(a, b):\n    return a - b + {i}  # edited"
            return "replace_symbol", {"symbol": f"func_{i}", "code": code}, code

        def js_replace(i: int) -> tuple[str, dict[str, Any], str]:
            code = f"function fn{i}(a, b) {{\n  return a - b + {i};\n}}"
            return "replace_symbol", {"symbol": f"fn{i}", "code": code}, code

        def py_insert(i: int) -> tuple[str, dict[str, Any], str]:
            code = f"def extra_{i}(x):\n    return x * {i}"
            return "insert_code", {"after_symbol": f"func_{i}", "code": code}, code

        async def main() -> None:
            out["python replace_symbol"] = await scenario("mod.py", py_replace)
            out["javascript replace_symbol"] = await scenario("mod.js", js_replace)
            out["python insert_code"] = await scenario("mod.py", py_insert)

        asyncio.run(main())
    return out


def run_side(tree: Path, edits: int, size: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(edits), str(size)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tree),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker failed for {tree}:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default="main", help="revision to compare against (git archive)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--edits", type=int, default=40, help="edits per scenario and round")
    p.add_argument("--size", type=int, default=300, help="definitions in each edited file")
    p.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = export(args.before, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for _ in range(args.rounds):
            runs["before"].append(run_side(before_tree, args.edits, args.size))
            runs["after"].append(run_side(ROOT, args.edits, args.size))
    print(
        f"edits per scenario and round: {args.edits}, rounds: {args.rounds}, "
        f"file: {args.size} definitions; before = {args.before}, after = this checkout"
    )
    print(
        f"{'scenario':26} {'side':6} {'file parses':>11} {'fragment':>8} "
        f"{'ms/edit min/med/max':>22} {'ms/edit+lookup min/med/max':>27}"
    )
    for scenario in runs["after"][0]:
        for side in ("before", "after"):
            rows = [r[scenario] for r in runs[side]]
            ms = sorted(r["ms_per_edit"] for r in rows)
            cyc = sorted(r["ms_per_cycle"] for r in rows)
            print(
                f"{scenario:26} {side:6} {rows[0]['file_parses_per_edit']:>11.2f} "
                f"{rows[0]['fragment_parses_per_edit']:>8.2f} {_span(ms):>22} {_span(cyc):>27}"
            )
    print(
        "file parses: per edit plus the find_symbol after it (the repo map refresh of the "
        "file); after = 1 + 1/edits: only the first edit parses its old text"
    )


def _span(values: list[float]) -> str:
    return f"{values[0]:.2f}/{statistics.median(values):.2f}/{values[-1]:.2f}"


if __name__ == "__main__":
    main()
