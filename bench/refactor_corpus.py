"""What the refactor tests and bench/refactor_bench.py need beyond the Python corpus: a real
TypeScript package (immer 10.1.1 from the npm registry, which ships its `src/*.ts`) and
typescript-language-server 4.4.1 + typescript 5.9.3, both cached under
`$K2TEST_CI_CACHE` (default /var/cache/k2lsp-ci)/refactor and installed once.

Usage: python bench/refactor_corpus.py fetch   (download what is missing; print the paths)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

IMMER = "10.1.1"
TSLS = ("typescript-language-server@4.4.1", "typescript@5.9.3")
# immer's tarball has no tsconfig.json (its repository does): the one a project would have.
TSCONFIG = (
    '{"compilerOptions": {"target": "ES2020", "module": "ESNext", "moduleResolution": "node", '
    '"lib": ["ES2020", "DOM"], "strict": true, "noEmit": true}, "include": ["src"]}\n'
)


def cache() -> Path:
    """The folder this module downloads into."""
    return Path(os.environ.get("K2TEST_CI_CACHE", "/var/cache/k2lsp-ci")) / "refactor"


def tsls_bin() -> Path:
    """typescript-language-server's program (may not exist yet: see `fetch`)."""
    return cache() / "tsls" / "node_modules" / ".bin" / "typescript-language-server"


def tsc_bin() -> Path:
    """The TypeScript compiler installed next to it."""
    return cache() / "tsls" / "node_modules" / ".bin" / "tsc"


def immer_source() -> Path:
    """The unpacked immer package (may not exist yet: see `fetch`)."""
    return cache() / f"immer-{IMMER}" / "package"


def _npm(*args: str) -> None:
    npm_cache = cache().parent / "npm-cache"
    subprocess.run(["npm", *args, "--cache", str(npm_cache)], check=True, timeout=600)


def fetch() -> tuple[Path, Path]:
    """Download and unpack immer, install the language server; both paths."""
    if shutil.which("npm") is None:
        raise SystemExit("npm is not installed: the TypeScript refactor case needs it")
    root = cache()
    root.mkdir(parents=True, exist_ok=True)
    if not tsls_bin().exists():
        _npm(
            "install", "--prefix", str(root / "tsls"), "--no-save", "--no-audit", "--no-fund", *TSLS
        )
    src = immer_source()
    if not (src / "src" / "immer.ts").is_file():
        tgz = root / f"immer-{IMMER}.tgz"
        if not tgz.is_file():
            _npm("pack", f"immer@{IMMER}", "--pack-destination", str(root), "--silent")
        with tarfile.open(tgz) as tar:
            tar.extractall(src.parent, filter="data")
    return src, tsls_bin()


def typescript_project(dest: Path) -> Path:
    """A user's TypeScript repository: immer's source with a tsconfig.json, committed (its
    built `dist/` left out, as a repository ignores build output)."""
    shutil.copytree(immer_source(), dest, ignore=shutil.ignore_patterns("dist"))
    (dest / "tsconfig.json").write_text(TSCONFIG, encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(dest)}
    env |= {"GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@x", "GIT_COMMITTER_NAME": "u"}
    env |= {"GIT_COMMITTER_EMAIL": "u@x", "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "import"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, env=env, capture_output=True)
    return dest


if __name__ == "__main__":
    if sys.argv[1:] == ["fetch"]:
        for path in fetch():
            print(path)
    else:
        print(__doc__)
