"""Repo map build benchmark: k2lsp vs Aider's repo map, side by side, on the same files.

Corpora (copied/extracted under bench/.cache so neither tool writes into the real stdlib):
- the running interpreter's stdlib minus test/ and site-packages/ (as in baselines.md);
- the Django 5.2.19 sdist (`pip download --no-deps --no-binary :all: django==5.2.19`).

Aider 0.86.2 runs from its own venv (bench/.cache/aider-venv, created on first use with
`pip install aider-chat==0.86.2`), with a 4-chars-per-token counter instead of a tokenizer
download. Each measurement runs in a fresh process; times exclude interpreter start-up.

Usage: python bench/repomap_bench.py [--corpus stdlib|django|both] [--runs 3] [--skip-aider]
Prints cold / warm / one-edit times, peak RSS, and k2lsp/Aider ratios. Never fails a test run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
REPO = HERE.parent
K2_PY = sys.executable
AIDER_VENV = CACHE / "aider-venv"
AIDER_PY = AIDER_VENV / "bin" / "python"
MAP_TOKENS = 1024

K2_WORKER = r"""
import json, os, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
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
        added = rmap.symbols(files[len(files) // 2])[-1].name
        out["edit_seen"] = added == "k2_bench_added_function"
    finally:
        victim.write_bytes(orig)
    t1 = time.perf_counter(); rmap.refresh(); text3 = rmap.render(%(tokens)d)
    out["restore_seconds"] = time.perf_counter() - t1
    out["restored_same"] = text3 == text
out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    dst = CACHE / "django-5.2.19"
    if not (dst / ".bench-files.json").exists():
        tarball = CACHE / "django-5.2.19.tar.gz"
        if not tarball.exists():
            subprocess.run(
                [
                    K2_PY,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "django==5.2.19",
                    "-d",
                    str(CACHE),
                ],
                check=True,
            )
        with tarfile.open(tarball) as tar:
            tar.extractall(CACHE, filter="data")
        files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.py"))
        (dst / ".bench-files.json").write_text(json.dumps(files))
    return dst


def _ensure_aider() -> bool:
    if AIDER_PY.exists():
        return True
    print("creating the Aider venv (bench/.cache/aider-venv) ...", flush=True)
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


def bench_k2(root: Path, runs: int) -> dict[str, list[float]]:
    """Cold (empty cache), warm (cache present, fresh process) and one-edit (in-process) figures."""
    cache = CACHE / f"k2-cache-{root.name}"
    keys = (
        "cold",
        "cold_cpu",
        "cold_total",
        "cold_rss",
        "warm",
        "warm_cpu",
        "warm_rss",
        "edit",
        "edit_cpu",
    )
    res: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(runs):
        shutil.rmtree(cache, ignore_errors=True)
        cold = _run(K2_PY, K2_WORKER, root, cache, "plain")
        res["cold"].append(cold["seconds"])
        res["cold_cpu"].append(cold["cpu"])
        res["cold_total"].append(cold["total_seconds"])
        res["cold_rss"].append(cold["maxrss_mib"])
        warm = _run(K2_PY, K2_WORKER, root, cache, "edit")
        for key, src in (
            ("warm", "seconds"),
            ("warm_cpu", "cpu"),
            ("warm_rss", "maxrss_mib"),
            ("edit", "edit_seconds"),
            ("edit_cpu", "edit_cpu"),
        ):
            res[key].append(warm[src])
        if not (warm["edit_seen"] and warm["restored_same"]):
            print("  WARNING: k2lsp map was stale after an edit", warm)
    return res


def bench_aider(root: Path) -> dict[str, float]:
    """One cold and one warm Aider run (its tags cache lives in the corpus root)."""
    shutil.rmtree(root / ".aider.tags.cache.v4", ignore_errors=True)
    cold = _run(AIDER_PY, AIDER_WORKER, root, CACHE, "plain")
    warm = _run(AIDER_PY, AIDER_WORKER, root, CACHE, "edit")
    return {
        "cold": cold["seconds"],
        "cold_cpu": cold["cpu"],
        "cold_rss": cold["maxrss_mib"],
        "warm": warm["seconds"],
        "warm_cpu": warm["cpu"],
        "edit_forced": warm["edit_seconds"],
        "edit_cpu": warm["edit_cpu"],
        "edit_auto": warm["edit_auto_seconds"],
        "edit_auto_stale": warm["edit_auto_stale"],
    }


def report(
    name: str, nfiles: int, k2: dict[str, list[float]], aider: dict[str, float] | None
) -> None:
    """Print one corpus's figures (wall seconds, and CPU seconds, which load disturbs less)."""
    med = {k: statistics.median(v) for k, v in k2.items() if v}
    runs = ", ".join(f"{x:.2f}" for x in k2["cold"])
    print(f"\n== {name}: {nfiles} files, map budget {MAP_TOKENS} tokens ==")
    print(
        f"k2lsp  cold {med['cold']:.2f} s wall / {med['cold_cpu']:.2f} s CPU (runs {runs}); "
        f"{med['cold_total']:.2f} s incl. cache write; peak {max(k2['cold_rss']):.0f} MiB"
    )
    print(
        f"k2lsp  warm {med['warm']:.3f} s wall / {med['warm_cpu']:.3f} s CPU (fresh process, "
        f"cache on disk); peak {max(k2['warm_rss']):.0f} MiB"
    )
    print(
        f"k2lsp  after one edit {med['edit'] * 1000:.0f} ms wall / "
        f"{med['edit_cpu'] * 1000:.0f} ms CPU "
        "(in-process; the edit is in the map)"
    )
    if aider:
        state = "STALE" if aider["edit_auto_stale"] else "fresh"
        print(
            f"aider  cold {aider['cold']:.2f} s wall / {aider['cold_cpu']:.2f} s CPU, "
            f"peak {aider['cold_rss']:.0f} MiB; "
            f"warm {aider['warm']:.2f} s / {aider['warm_cpu']:.2f} s CPU"
        )
        print(
            f"aider  after one edit: auto mode {aider['edit_auto'] * 1000:.0f} ms ({state}); "
            f"forced {aider['edit_forced']:.2f} s wall / {aider['edit_cpu']:.2f} s CPU"
        )
        print(
            f"ratio  cold {med['cold'] / aider['cold']:.2f}x Aider wall, "
            f"{med['cold_cpu'] / aider['cold_cpu']:.2f}x CPU; "
            f"warm {med['warm'] / aider['warm']:.3f}x wall; "
            f"one edit {med['edit_cpu'] / aider['edit_cpu']:.4f}x CPU (vs forced refresh)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", choices=("stdlib", "django", "both"), default="both")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-aider", action="store_true")
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    with_aider = not args.skip_aider and _ensure_aider()
    corpora = []
    if args.corpus in ("stdlib", "both"):
        corpora.append(("stdlib", _copy_stdlib()))
    if args.corpus in ("django", "both"):
        corpora.append(("django 5.2.19", _django()))
    for name, root in corpora:
        nfiles = len(json.loads((root / ".bench-files.json").read_text()))
        aider = bench_aider(root) if with_aider else None
        report(name, nfiles, bench_k2(root, args.runs), aider)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
