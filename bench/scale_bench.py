"""Repo map at scale: cold time, peak memory and per-edit cost from 100 to 10,000 files.

Trees (built once under bench/.cache):
- generated: synthetic Python modules (~240 lines: classes, methods, functions calling names
  defined in other modules);
- real: files of the stdlib and the Django sdist, cycled to the size wanted, each copy given a
  unique first line so no two files share content (the cache is keyed by content).

Each tree is mapped in a fresh process: cold (empty cache, clock stops after the cache write),
then one file is edited and the map refreshed and rendered, then rendered with focus on the
edited file and up to three of its specific names (defined in at most two places), as a task
that names the file and a function in it would; each the median of five edits. "edit+focus"
is refresh + focused render after one more edit, two ways: a full scan (stat of every file:
what a refresh costs after a test run or a command, which may write anything) and from the
journal (the agent's editing tools name the files they wrote: only those are looked at).
Peak memory is the process's max RSS; the cold build's worker processes (k2lsp.code.mappool)
are shown with their own peak.

Usage: python bench/scale_bench.py [--sizes 100,1000,10000] [--kinds generated,real]
Never fails a test run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpora  # noqa: E402

CACHE = HERE / ".cache"
REPO = HERE.parent

WORKER = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
t0 = time.perf_counter()
from k2lsp.code.repomap import RepoMap
root, cache = Path(sys.argv[1]), Path(sys.argv[2])
files = json.loads((root / ".bench-files.json").read_text())
rmap = RepoMap(root, cache, files)
rmap.refresh(); rmap.render(1024); rmap.wait_idle()
out = {"cold": time.perf_counter() - t0}
victim = root / files[len(files) // 2]
orig = victim.read_bytes()
try:
    rel = files[len(files) // 2]
    edit, focus, full, journaled = [], [], [], []
    for k in range(5):  # median of five edits each way
        victim.write_bytes(orig + f"\n\ndef k2_scale_added{k}(x):\n    return x\n".encode())
        t1 = time.perf_counter(); rmap.refresh(); rmap.render(1024)
        edit.append(time.perf_counter() - t1)
        names = frozenset([s.name for s in rmap.symbols(rel)
                           if rmap.def_count(s.name) <= 2][:3])
        t1 = time.perf_counter(); rmap.render(1024, frozenset({rel}), names)
        focus.append(time.perf_counter() - t1)
        victim.write_bytes(orig + f"\n\ndef k2_scale_again{k}(x):\n    return x\n".encode())
        t1 = time.perf_counter(); rmap.refresh(); rmap.render(1024, frozenset({rel}), names)
        full.append(time.perf_counter() - t1)
    journal = object()  # as the agent's tools give it: the paths they wrote since the last look
    rmap.refresh(None, journal)
    for k in range(5):
        victim.write_bytes(orig + f"\n\ndef k2_scale_tool{k}(x):\n    return x\n".encode())
        t1 = time.perf_counter(); rmap.refresh({rel}, journal)
        rmap.render(1024, frozenset({rel}), names)
        journaled.append(time.perf_counter() - t1)
    med = lambda v: sorted(v)[len(v) // 2]
    out.update(edit=med(edit), focus=med(focus), edit_focus=med(full),
               edit_focus_journal=med(journaled))
finally:
    victim.write_bytes(orig)
rmap.refresh(); rmap.flush()
out["lines"] = sum((root / f).read_bytes().count(b"\n") for f in files)
out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from k2lsp.code.mappool import cores, _MAX_WORKERS
out["child_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
out["workers"] = min(cores(), _MAX_WORKERS) if out["child_rss"] else 0
print(json.dumps(out))
"""


def _module(i: int, n: int, rng: random.Random) -> str:
    """One synthetic module that defines names and uses names of other modules."""
    out = [
        f'"""Generated module {i}."""',
        "",
        f"from pkg{(i + 1) % n // 100} import helper_{(i + 1) % n}",
        "",
    ]
    for c in range(4):
        out += [f"class Model{i}_{c}:", f'    """Model {c} of module {i}."""', ""]
        for m in range(6):
            other = rng.randrange(n)
            out += [
                f"    def method_{m}_{c}(self, value, count=3):",
                f"        total = helper_{other}(value) + count",
                "        for item in range(count):",
                f"            total += self.method_{(m + 1) % 6}_{c}(item) if item else 0",
                "        return total",
                "",
            ]
    for f in range(6):
        other = rng.randrange(n)
        out += [
            f"def helper_{i}{'' if f == 0 else f'_{f}'}(value):",
            f"    return Model{other}_{f % 4}().method_0_{f % 4}(value)",
            "",
            "",
        ]
    return "\n".join(out) + "\n"


def _backdate(root: Path, files: list[str]) -> None:
    """Date the files an hour back, like a checkout not made seconds ago: files modified
    within 2 s of a scan are re-hashed at the next refresh (their mtime cannot be trusted
    yet), which would add a one-off cost to the first edit's figure."""
    old = time.time() - 3600
    for rel in files:
        os.utime(root / rel, (old, old))


def generated_tree(n: int) -> Path:
    root = CACHE / f"scale-generated-{n}"
    if (root / ".bench-files.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(n)
    files = []
    for i in range(n):
        rel = f"pkg{i // 100}/mod_{i}.py"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(_module(i, n, rng))
        files.append(rel)
    _backdate(root, files)
    (root / ".bench-files.json").write_text(json.dumps(files))
    return root


def real_tree(n: int) -> Path:
    root = CACHE / f"scale-real-{n}"
    if (root / ".bench-files.json").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    sources = [(corpora.stdlib_root(), r) for r in corpora.python_files(corpora.stdlib_root())]
    dj = corpora.fetch_django()
    sources += [(dj, r) for r in corpora.python_files(dj)]
    files = []
    for i in range(n):
        src_root, rel = sources[i % len(sources)]
        dst = f"copy{i // len(sources)}/{rel}"
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        data = (src_root / rel).read_bytes()
        (root / dst).write_bytes(f"# copy {i}\n".encode() + data)
        files.append(dst)
    _backdate(root, files)
    (root / ".bench-files.json").write_text(json.dumps(files))
    return root


def measure(root: Path) -> dict[str, float]:
    cache = CACHE / f"scale-cache-{root.name}"
    shutil.rmtree(cache, ignore_errors=True)
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(root), str(cache), str(REPO)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Build the trees, measure each in a fresh process, print one row per tree."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--kinds", default="generated,real")
    args = ap.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(
        f"{'tree':10} {'files':>6} {'lines':>9} {'cold s':>7} {'peak MiB':>9} "
        f"{'workers':>14} {'edit ms':>8} {'focus ms':>9} {'edit+focus ms':>14} "
        f"{'journal':>8}"
    )
    for kind in args.kinds.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            root = generated_tree(n) if kind == "generated" else real_tree(n)
            r = measure(root)
            workers = f"{r['workers']} x {r['child_rss']:.0f} MiB" if r["workers"] else "none"
            print(
                f"{kind:10} {n:6} {int(r['lines']):9,} {r['cold']:7.2f} {r['rss']:9.0f} "
                f"{workers:>14} {r['edit'] * 1000:8.1f} {r['focus'] * 1000:9.1f} "
                f"{r['edit_focus'] * 1000:14.1f} {r['edit_focus_journal'] * 1000:8.1f}",
                flush=True,
            )
    print(
        "peak MiB: the map's process; workers: the cold build's parse processes (forked: their "
        "RSS counts pages shared with the parent), largest one shown"
    )
    print(
        "edit ms: refresh (full scan) + render; edit+focus ms: refresh (full scan) + focused "
        "render; journal: refresh of the files the editing tools recorded + focused render; "
        "medians of five edits"
    )
    print("goals at 10,000 files: peak <= 150 MiB, edit+focus <= 50 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
