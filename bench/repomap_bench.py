"""Repo map build benchmark: k2lsp vs Aider's repo map, side by side, on the same files.

Corpora (copied/extracted under bench/.cache so neither tool writes into the real stdlib):
- the running interpreter's stdlib minus test/ and site-packages/ (as in baselines.md);
- the Django 5.2.19 sdist (`pip download --no-deps --no-binary :all: django==5.2.19`).

Aider 0.86.2 runs from its own venv ($K2TEST_AIDER_VENV, else aider-venv under the corpora
cache, see corpora.py; created on first use with
`pip install aider-chat==0.86.2`), with a 4-chars-per-token counter instead of a tokenizer
download. Each measurement runs in a fresh process; times exclude interpreter start-up; both cold
clocks include writing the tool's own cache; k2lsp and Aider rounds alternate.

Usage: python bench/repomap_bench.py [--corpus stdlib|django|both] [--runs 3] [--skip-aider]
Prints cold / warm / one-edit (and one-edit-with-focus) min/median/max, peak RSS and ratios.
Never fails a test run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpora  # noqa: E402

CACHE = HERE / ".cache"
REPO = HERE.parent
K2_PY = sys.executable
AIDER_VENV = Path(
    os.environ.get("K2TEST_AIDER_VENV") or corpora.cache_dir() / "bench" / "aider-venv"
)
AIDER_PY = AIDER_VENV / "bin" / "python"
MAP_TOKENS = 1024

K2_WORKER = r"""
import json, os, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
def cpu():  # this process and its finished children (the map's worker processes)
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime
c0 = cpu()
t0 = time.perf_counter()
from k2lsp.code.repomap import RepoMap
root, cache, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
files = json.loads((root / ".bench-files.json").read_text())
rmap = RepoMap(root, cache, files)
rmap.refresh(); text = rmap.render(%(tokens)d)
out = {"seconds": time.perf_counter() - t0, "cpu": cpu() - c0, "chars": len(text)}
rmap.wait_idle(); out["total_seconds"] = time.perf_counter() - t0; out["total_cpu"] = cpu() - c0
if mode == "edit":
    victim = root / files[len(files) // 2]
    orig = victim.read_bytes()
    try:
        victim.write_bytes(orig + b"\n\ndef k2_bench_added_function(x):\n    return x\n")
        c1 = cpu(); t1 = time.perf_counter(); rmap.refresh(); text2 = rmap.render(%(tokens)d)
        out["edit_seconds"] = time.perf_counter() - t1; out["edit_cpu"] = cpu() - c1
        focus = frozenset({files[len(files) // 2]})
        mine = rmap.symbols(files[len(files) // 2])
        names = frozenset([s.name for s in mine if rmap.def_count(s.name) <= 2][:3])
        t1 = time.perf_counter(); rmap.render(%(tokens)d, focus, names)
        out["focus_seconds"] = time.perf_counter() - t1
        added = rmap.symbols(files[len(files) // 2])[-1].name
        out["edit_seen"] = added == "k2_bench_added_function"
    finally:
        victim.write_bytes(orig)
    t1 = time.perf_counter(); rmap.refresh(); text3 = rmap.render(%(tokens)d)
    out["restore_seconds"] = time.perf_counter() - t1
    out["restored_same"] = text3 == text
out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["child_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(out))
""".replace("%(tokens)d", str(MAP_TOKENS))

AIDER_WORKER = r"""
import json, os, resource, sys, time
from pathlib import Path
root, mode = Path(sys.argv[1]), sys.argv[3]
files = [str(root / f) for f in json.loads((root / ".bench-files.json").read_text())]
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0 = cpu()
t0 = time.perf_counter()
from aider.repomap import RepoMap
class IO:
    def read_text(self, fname, silent=False):
        try:
            return open(fname, encoding="utf-8").read()
        except (OSError, UnicodeError):
            return None
    def tool_output(self, *a, **k): pass
    def tool_error(self, *a, **k): pass
    def tool_warning(self, *a, **k): pass
class Model:
    def token_count(self, text):
        return len(text) / 4
rm = RepoMap(map_tokens=%(tokens)d, root=str(root), main_model=Model(), io=IO())
text = rm.get_repo_map([], files) or ""
out = {"seconds": time.perf_counter() - t0, "cpu": cpu() - c0, "chars": len(text)}
if mode == "edit":
    victim = Path(files[len(files) // 2])
    orig = victim.read_bytes()
    try:
        victim.write_bytes(orig + b"\n\ndef k2_bench_added_function(x):\n    return x\n")
        t1 = time.perf_counter(); auto = rm.get_repo_map([], files) or ""
        out["edit_auto_seconds"] = time.perf_counter() - t1
        out["edit_auto_stale"] = auto == text
        c1 = cpu(); t1 = time.perf_counter()
        forced = rm.get_repo_map([], files, force_refresh=True) or ""
        out["edit_seconds"] = time.perf_counter() - t1; out["edit_cpu"] = cpu() - c1
    finally:
        victim.write_bytes(orig)
out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
""".replace("%(tokens)d", str(MAP_TOKENS))


def _copy_stdlib() -> Path:
    src = Path(sysconfig.get_paths()["stdlib"])
    dst = CACHE / "corpus-stdlib"
    if not (dst / ".bench-files.json").exists():
        files = sorted(
            p.relative_to(src).as_posix()
            for p in src.rglob("*.py")
            if not p.relative_to(src).as_posix().startswith(("test/", "site-packages/"))
        )
        for rel in files:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)
        (dst / ".bench-files.json").write_text(json.dumps(files))
    return dst


def _django() -> Path:
    """A private copy of the Django sdist (from corpora.py's cache: downloaded once)."""
    dst = CACHE / "django-5.2.19"
    if not (dst / ".bench-files.json").exists():
        src = corpora.fetch_django()
        shutil.copytree(src, dst, dirs_exist_ok=True)
        files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.py"))
        (dst / ".bench-files.json").write_text(json.dumps(files))
    return dst


def _ensure_aider() -> bool:
    if AIDER_PY.exists():
        return True
    print(f"creating the Aider venv ({AIDER_VENV}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(AIDER_VENV)], check=True)
    proc = subprocess.run(
        [str(AIDER_PY), "-m", "pip", "install", "-q", "aider-chat==0.86.2"], check=False
    )
    return proc.returncode == 0


def _run(python: Path | str, worker: str, root: Path, cache: Path, mode: str) -> dict[str, float]:
    proc = subprocess.run(
        [str(python), "-c", worker, str(root), str(cache), mode, str(REPO)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=str(CACHE),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def k2_round(root: Path, res: dict[str, list[float]]) -> None:
    """One cold run (empty cache; clock stops after the cache is written) and one warm + edit."""
    cache = CACHE / f"k2-cache-{root.name}"
    shutil.rmtree(cache, ignore_errors=True)
    cold = _run(K2_PY, K2_WORKER, root, cache, "plain")
    warm = _run(K2_PY, K2_WORKER, root, cache, "edit")
    pairs = (
        ("cold", cold["total_seconds"]),
        ("cold_cpu", cold["total_cpu"]),
        ("cold_map_only", cold["seconds"]),
        ("cold_rss", cold["maxrss_mib"]),
        ("cold_child_rss", cold["child_rss_mib"]),
        ("warm", warm["seconds"]),
        ("warm_rss", warm["maxrss_mib"]),
        ("edit", warm["edit_seconds"]),
        ("edit_cpu", warm["edit_cpu"]),
        ("focus", warm["focus_seconds"]),
    )
    for key, value in pairs:
        res.setdefault(key, []).append(value)
    if not (warm["edit_seen"] and warm["restored_same"]):
        print("  WARNING: k2lsp map was stale after an edit", warm)


def aider_round(root: Path, res: dict[str, list[float]]) -> None:
    """One cold Aider run (its tags cache, written during the run, removed first) and one warm."""
    shutil.rmtree(root / ".aider.tags.cache.v4", ignore_errors=True)
    cold = _run(AIDER_PY, AIDER_WORKER, root, CACHE, "plain")
    warm = _run(AIDER_PY, AIDER_WORKER, root, CACHE, "edit")
    pairs = (
        ("cold", cold["seconds"]),
        ("cold_cpu", cold["cpu"]),
        ("cold_rss", cold["maxrss_mib"]),
        ("warm", warm["seconds"]),
        ("edit", warm["edit_seconds"]),
        ("edit_cpu", warm["edit_cpu"]),
        ("edit_auto", warm["edit_auto_seconds"]),
        ("edit_auto_stale", float(warm["edit_auto_stale"])),
    )
    for key, value in pairs:
        res.setdefault(key, []).append(value)


def _mmm(values: list[float], scale: float = 1.0, fmt: str = ".2f") -> str:
    v = sorted(x * scale for x in values)
    return f"{v[0]:{fmt}} / {statistics.median(v):{fmt}} / {v[-1]:{fmt}}"


def report(
    name: str, nfiles: int, k2: dict[str, list[float]], aider: dict[str, list[float]] | None
) -> None:
    """Print one corpus's figures as min / median / max over the alternated rounds."""
    print(f"\n== {name}: {nfiles} files, map budget {MAP_TOKENS} tokens, min / median / max ==")
    print(
        f"k2lsp  cold {_mmm(k2['cold'])} s wall incl. cache write "
        f"(map alone {_mmm(k2['cold_map_only'])} s); CPU incl. workers "
        f"{_mmm(k2['cold_cpu'])} s; peak {max(k2['cold_rss']):.0f} MiB "
        f"(+ {max(k2['cold_child_rss']):.0f} MiB per worker process at most)"
    )
    print(f"k2lsp  warm {_mmm(k2['warm'], 1000, '.0f')} ms (fresh process, cache on disk)")
    print(
        f"k2lsp  after one edit {_mmm(k2['edit'], 1000, '.0f')} ms; then with focus "
        f"{_mmm(k2['focus'], 1000, '.0f')} ms (in-process; the edit is in the map)"
    )
    if not aider:
        return
    stale = "STALE" if any(aider["edit_auto_stale"]) else "fresh"
    print(
        f"aider  cold {_mmm(aider['cold'])} s wall incl. its cache write; "
        f"CPU {_mmm(aider['cold_cpu'])} s; peak {max(aider['cold_rss']):.0f} MiB"
    )
    print(
        f"aider  warm {_mmm(aider['warm'])} s; after one edit: auto mode "
        f"{_mmm(aider['edit_auto'], 1000, '.0f')} ms ({stale}), forced {_mmm(aider['edit'])} s"
    )
    ratios = sorted(a / b for a, b in zip(k2["cold"], aider["cold"], strict=False))
    med = statistics.median
    print(
        f"ratio  cold k2lsp/Aider per alternated round {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"median of medians {med(k2['cold']) / med(aider['cold']):.3f}x (goal <= 0.2x); "
        f"CPU {med(k2['cold_cpu']) / med(aider['cold_cpu']):.3f}x; "
        f"warm {med(k2['warm']) / med(aider['warm']):.3f}x"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark: k2lsp and Aider rounds alternate on each corpus."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--corpus", choices=("stdlib", "django", "both"), default="both")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-aider", action="store_true")
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    with_aider = not args.skip_aider and _ensure_aider()
    roots = []
    if args.corpus in ("stdlib", "both"):
        roots.append(("stdlib", _copy_stdlib()))
    if args.corpus in ("django", "both"):
        roots.append(("django 5.2.19", _django()))
    for name, root in roots:
        nfiles = len(json.loads((root / ".bench-files.json").read_text()))
        k2: dict[str, list[float]] = {}
        aider: dict[str, list[float]] = {}
        for i in range(args.runs):
            first, second = (k2_round, aider_round) if i % 2 == 0 else (aider_round, k2_round)
            for fn in (first, second):
                if fn is aider_round and not with_aider:
                    continue
                fn(root, k2 if fn is k2_round else aider)
        report(name, nfiles, k2, aider if with_aider else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
