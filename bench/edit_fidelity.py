"""Edit fidelity of `replace_symbol` on definitions sampled from the running interpreter's stdlib.

For each sampled definition, in a scratch copy of its file:
1. replacing it with its own text must leave the file byte-identical;
2. replacing it with a changed body must change only that definition's bytes;
3. replacing it with a broken body must be refused and write nothing.

Usage: python bench/edit_fidelity.py [--n 2000] [--seed 0]
Prints counts and the median milliseconds per replace_symbol call. Never fails a test run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from k2lsp.code.symbols import Symbol, extract_symbols
from k2lsp.tools.base import ToolContext, ToolError
from k2lsp.tools.symbols import ReplaceSymbolParams, replace_symbol
from k2lsp.workspace import Workspace


def stdlib_files() -> tuple[Path, list[str]]:
    """The stdlib root and its .py files minus test/ and site-packages/ (as in baselines.md)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if not p.relative_to(root).as_posix().startswith(("test/", "site-packages/"))
    )
    return root, files


def sample(root: Path, files: list[str], n: int, seed: int) -> list[tuple[str, Symbol]]:
    """`n` definitions drawn uniformly from every definition of every readable file."""
    pool: list[tuple[str, Symbol]] = []
    for rel in files:
        data = (root / rel).read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        pool.extend((rel, s) for s in extract_symbols("python", data))
    rng = random.Random(seed)
    return rng.sample(pool, min(n, len(pool)))


def query_for(symbols: list[Symbol], sym: Symbol) -> str:
    """The qualified name, with @LINE only when the name alone is ambiguous."""
    same = [s for s in symbols if s.qualname == sym.qualname]
    return sym.qualname if len(same) == 1 else f"{sym.qualname}@{sym.start_line}"


def changed_body(own: str) -> str | None:
    """The definition with one extra statement at the end of its body (None for one-liners)."""
    lines = own.split("\n")
    if len(lines) < 2:
        return None
    last = lines[-1]
    indent = last[: len(last) - len(last.lstrip())]
    if not indent or not last.strip():
        return None
    return own + "\n" + indent + "k2_fidelity_marker = 1"


def run_case(
    ctx: ToolContext, work: Path, src: Path, rel: str, sym: Symbol, times: list[float]
) -> dict[str, str]:
    """Run the three checks for one definition; map check name -> 'ok' / 'fail: why' / 'skip'."""
    target = work / "m.py"
    original = src.read_bytes()
    own = original[sym.start_byte : sym.end_byte].decode("utf-8")
    symbols = extract_symbols("python", original)
    query = query_for(symbols, sym)
    result: dict[str, str] = {}

    def call(code: str) -> str | None:
        target.write_bytes(original)
        t0 = time.perf_counter()
        try:
            replace_symbol(ctx, ReplaceSymbolParams(path="m.py", symbol=query, code=code))
            return None
        except ToolError as exc:
            return str(exc)
        finally:
            times.append(time.perf_counter() - t0)

    err = call(own)
    result["identity"] = (
        "ok"
        if err is None and target.read_bytes() == original
        else f"fail: {err or 'bytes differ'}"
    )
    new_code = changed_body(own)
    if new_code is None:
        result["changed"] = "skip"
    else:
        err = call(new_code)
        expect = original[: sym.start_byte] + new_code.encode() + original[sym.end_byte :]
        got = target.read_bytes()
        result["changed"] = (
            "ok" if err is None and got == expect else f"fail: {err or _first_diff(expect, got)}"
        )
    broken = new_code.replace("k2_fidelity_marker = 1", "x = (") if new_code else own + "\nx = ("
    target.write_bytes(original)
    err = call(broken)
    unchanged = target.read_bytes() == original
    result["broken"] = (
        "ok"
        if err is not None and "edit refused" in err and unchanged
        else f"fail: {err or 'written'}"
    )
    return result


def _first_diff(a: bytes, b: bytes) -> str:
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return f"bytes differ at {i}: expected {a[i - 20 : i + 30]!r} got {b[i - 20 : i + 30]!r}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    root, files = stdlib_files()
    cases = sample(root, files, args.n, args.seed)
    work = Path(tempfile.mkdtemp(prefix="k2lsp-fidelity-"))
    ctx = ToolContext(workspace=Workspace(work))
    times: list[float] = []
    counts: dict[str, dict[str, int]] = {
        k: {"ok": 0, "fail": 0, "skip": 0} for k in ("identity", "changed", "broken")
    }
    failures: list[str] = []
    try:
        for rel, sym in cases:
            for check, outcome in run_case(ctx, work, root / rel, rel, sym, times).items():
                counts[check][outcome.split(":", 1)[0]] += 1
                if outcome.startswith("fail") and len(failures) < 15:
                    failures.append(
                        f"{check} {rel}:{sym.start_line} {sym.qualname}: {outcome[:300]}"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"edit fidelity on {len(cases)} stdlib definitions (seed {args.seed}):")
    for check, c in counts.items():
        print(f"  {check:9} ok {c['ok']:5}  fail {c['fail']:4}  skipped {c['skip']:4}")
    print(
        f"  replace_symbol calls: {len(times)}, median {statistics.median(times) * 1000:.1f} ms, "
        f"p90 {sorted(times)[int(len(times) * 0.9)] * 1000:.1f} ms"
    )
    for line in failures:
        print("  FAIL", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
