"""Edit fidelity of `replace_symbol` / `insert_code` on real code (the stdlib and Django).

1. identity, every definition of every file: replacing a definition by its own text leaves
   the file byte-identical, and inserting its full lines after it adds exactly those lines
   (the placement + gate path the tools use, without the file I/O);
2. through the real `replace_symbol` tool on files, for a sample of definitions:
   - changed: one statement appended to the body; when the result compiles the file must be
     exactly the expected bytes, when it does not the edit must be refused;
   - broken, one row per kind (unclosed bracket, bad dedent, tab/space mix, Python 2 print,
     unexpected indent, unterminated string, missing colon, null byte): each case is first
     checked to be refused by `compile()`, then must be refused by the tool with nothing written.

Usage: python bench/edit_fidelity.py [--corpus stdlib|django|both] [--n 500] [--seed 0]
Prints counts and the median milliseconds per tool call. Never fails a test run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpora

from k2lsp.code.astedit import insert_text, replace_definitions
from k2lsp.code.symbols import Symbol, extract_symbols
from k2lsp.runs.workspace import Workspace
from k2lsp.tools.base import ToolContext, ToolError
from k2lsp.tools.symbols import ReplaceSymbolParams, _first_passing, replace_symbol

Case = tuple[str, str, Symbol]  # rel, text, definition


def load(root: Path) -> list[tuple[str, str, list[Symbol]]]:
    """(rel, LF text, definitions) of every readable .py file of a corpus."""
    out = []
    for rel in corpora.python_files(root):
        data = (root / rel).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\r" in text:
            continue
        out.append((rel, text, extract_symbols("python", data)))
    return out


def identity_replace_ok(rel: str, text: str, sym: Symbol) -> bool:
    own = text.encode()[sym.start_byte : sym.end_byte].decode()
    try:
        return _first_passing(rel, text, replace_definitions("python", text, sym, own)) == text
    except ToolError:
        return False


def identity_insert_ok(text: str, sym: Symbol) -> bool:
    data = text.encode()
    line_start = data.rfind(b"\n", 0, sym.start_byte) + 1
    lines = data[line_start : sym.end_byte]
    out = insert_text("python", text, lines.decode(), sym, after=True).encode()
    cut = data.find(b"\n", sym.end_byte) + 1 or len(data)
    added = out[cut : len(out) - (len(data) - cut)]
    return out[:cut] == data[:cut] and out.endswith(data[cut:]) and added.strip(b"\n") == lines


def compiles(text: str) -> bool:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, "m.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _last_line(own: str) -> tuple[str, str] | None:
    """(indentation, text) of the definition's last line when it is an indented body line."""
    last = own.rsplit("\n", 1)[-1]
    ws = last[: len(last) - len(last.lstrip())]
    return (ws, last) if "\n" in own and ws and " " in ws and "\t" not in ws else None


def _append(own: str, line: Callable[[str], str]) -> str | None:
    found = _last_line(own)
    return None if found is None else own + "\n" + line(found[0])


BROKEN: dict[str, Callable[[str], str | None]] = {
    "unclosed bracket": lambda own: _append(own, lambda ws: ws + "k2_x = ("),
    "bad dedent": lambda own: _append(own, lambda ws: ws[:-1] + "k2_x = 1"),
    "tab/space mix": lambda own: _append(own, lambda ws: "\t" + ws[8:] + "k2_x = 1"),
    "python 2 print": lambda own: _append(own, lambda ws: ws + 'print "k2"'),
    "unexpected indent": lambda own: _append(own, lambda ws: ws + "    k2_x = 1"),
    "unterminated string": lambda own: _append(own, lambda ws: ws + "k2_x = 'abc"),
    "missing colon": lambda own: (
        own.replace("):\n", ")\n", 1) if own.startswith(("def ", "async def ")) else None
    ),
    "null byte": lambda own: _append(own, lambda ws: ws + "k2_x = 1\0"),
}


class ToolRunner:
    """Calls the real replace_symbol tool on a scratch copy of each file."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="k2lsp-fidelity-"))
        self.ctx = ToolContext(workspace=Workspace(self.work))
        self.times: list[float] = []

    def call(self, text: str, query: str, code: str) -> tuple[str | None, str]:
        """(error or None, file text afterwards)."""
        target = self.work / "m.py"
        target.write_bytes(text.encode())
        t0 = time.perf_counter()
        try:
            replace_symbol(self.ctx, ReplaceSymbolParams(path="m.py", symbol=query, code=code))
            err = None
        except ToolError as exc:
            err = str(exc)
        self.times.append(time.perf_counter() - t0)
        return err, target.read_bytes().decode()

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def query_for(symbols: list[Symbol], sym: Symbol) -> str:
    same = [s for s in symbols if s.qualname == sym.qualname]
    return sym.qualname if len(same) == 1 else f"{sym.qualname}@{sym.start_line}"


def run_corpus(name: str, n: int, seed: int, show: int, identity: bool = True) -> None:
    root = corpora.corpus(name)
    files = load(root)
    cases = [(rel, text, s, syms) for rel, text, syms in files for s in syms]
    t0 = time.perf_counter()
    rep_bad = [c for c in cases if identity and not identity_replace_ok(c[0], c[1], c[2])]
    ins_bad = [c for c in cases if identity and not identity_insert_ok(c[1], c[2])]
    secs = time.perf_counter() - t0
    print(f"[{name}] {len(files)} files, {len(cases)} definitions ({secs:.0f} s)")
    for label, bad in (("identity replace", rep_bad), ("identity insert", ins_bad)):
        if not identity:
            break
        ok = len(cases) - len(bad)
        print(f"  {label:20} byte-exact {ok:6}/{len(cases)} = {100 * ok / len(cases):.3f}%")
        for rel, _t, s, _ in bad[:show]:
            print(f"    FAIL {rel}:{s.start_line} {s.qualname}")
    rng = random.Random(seed)
    sample = rng.sample(cases, min(n, len(cases)))
    runner = ToolRunner()
    rows: dict[str, list[int]] = {}  # kind -> [refused/ok, wrong, written-broken]
    uncompilable = 0
    try:
        for _rel, text, sym, syms in sample:
            if not compiles(text):  # already broken (e.g. Python 2 test data): the gate
                uncompilable += 1  # falls back to "no more tree-sitter errors"; not counted
                continue
            own = text.encode()[sym.start_byte : sym.end_byte].decode()
            query = query_for(syms, sym)
            changed = _append(own, lambda ws: ws + "k2_fidelity_marker = 1")
            if changed is not None:
                expect = text.encode()[: sym.start_byte].decode() + changed
                expect += text.encode()[sym.end_byte :].decode()
                err, got = runner.call(text, query, changed)
                row = rows.setdefault("changed (valid result)", [0, 0, 0])
                if not compiles(expect):
                    row = rows.setdefault("changed (invalid result)", [0, 0, 0])
                    ok = err is not None and got == text
                else:
                    ok = err is None and got == expect
                row[0 if ok else 1] += 1
            for kind, make in BROKEN.items():
                code = make(own)
                if code is None:
                    continue
                whole = text.encode()[: sym.start_byte].decode() + code
                whole += text.encode()[sym.end_byte :].decode()
                if compiles(whole):
                    continue  # not broken in this place (e.g. inside a string)
                err, got = runner.call(text, query, code)
                row = rows.setdefault(f"broken: {kind}", [0, 0, 0])
                refused = err is not None and "edit refused" in err and got == text
                row[0 if refused else 1] += 1
                if got != text and not compiles(got):
                    row[2] += 1
    finally:
        runner.close()
    print(
        f"  through replace_symbol on {len(sample)} sampled definitions (seed {seed}; "
        f"{uncompilable} in files Python already refuses left out):"
    )
    for kind, (good, bad, written) in rows.items():
        total = good + bad
        what = "refused" if "broken" in kind or "invalid" in kind else "exact"
        extra = f", broken files written {written}" if kind.startswith("broken") else ""
        print(
            f"    {kind:30} {what} {good:5}/{total:<5} = {100 * good / max(total, 1):6.2f}%{extra}"
        )
    t = sorted(runner.times)
    print(
        f"  replace_symbol calls {len(t)}: median {statistics.median(t) * 1000:.1f} ms, "
        f"p90 {t[int(len(t) * 0.9)] * 1000:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--corpus", choices=["stdlib", "django", "both"], default="both")
    ap.add_argument("--n", type=int, default=500, help="definitions sampled for the tool runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=10, help="failures listed per check")
    ap.add_argument("--skip-identity", action="store_true", help="only the tool runs")
    args = ap.parse_args(argv)
    for name in ("stdlib", "django") if args.corpus == "both" else (args.corpus,):
        run_corpus(name, args.n, args.seed, args.show, not args.skip_identity)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
