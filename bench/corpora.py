"""The real-code corpora the benchmarks and the edit-fidelity tests read.

- stdlib: the running interpreter's standard library minus test/ and site-packages/;
- django: the Django 5.2.19 sdist, downloaded once with pip and extracted under the cache
  (`$K2TEST_CI_CACHE`, else /var/cache/k2lsp-ci when writable, else bench/.cache).

Usage: python bench/corpora.py fetch   (download Django if missing; print both roots)
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

DJANGO = "5.2.19"


def cache_dir() -> Path:
    """Where downloaded corpora live (kept between CI runs)."""
    env = os.environ.get("K2TEST_CI_CACHE")
    if env:
        return Path(env)
    ci = Path("/var/cache/k2lsp-ci")
    if ci.is_dir() and os.access(ci, os.W_OK):
        return ci
    return Path(__file__).resolve().parent / ".cache"


def stdlib_root() -> Path:
    """The running interpreter's stdlib folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def django_root() -> Path:
    """The extracted sdist folder (may not exist yet: see `fetch_django`)."""
    return cache_dir() / "django" / f"django-{DJANGO}"


def fetch_django() -> Path:
    """Download and extract the Django sdist once; its root."""
    root = django_root()
    if (root / "django" / "__init__.py").is_file():
        return root
    dest = root.parent
    dest.mkdir(parents=True, exist_ok=True)
    sdist = dest / f"django-{DJANGO}.tar.gz"
    if not sdist.is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"django=={DJANGO}",
                "-d",
                str(dest),
            ],
            check=True,
        )
    with tarfile.open(sdist) as tar:
        tar.extractall(dest, filter="data")
    return root


def python_files(root: Path) -> list[str]:
    """Relative paths of the .py files of a corpus (stdlib: minus test/ and site-packages/)."""
    skip = ("test/", "site-packages/") if root == stdlib_root() else ()
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if not rel.startswith(skip) and path.is_file():
            out.append(rel)
    return sorted(out)


def corpus(name: str) -> Path:
    """The root of corpus `name` ("stdlib" or "django"), fetching Django if needed."""
    return stdlib_root() if name == "stdlib" else fetch_django()


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        raise SystemExit(__doc__)
    print("stdlib", stdlib_root())
    print("django", fetch_django())
