"""The one answer to "which files of a workspace exist": ripgrep's `--files`.

`list_files` (the tool), `search` (its file set: ripgrep runs with the same `LIST_FLAGS`), the
repo map (`code/files.py`) and the workspace ignore checks (`Workspace.ignored`) all ask this
module, so `.gitignore` (nested, with `!` negations), `.ignore`, `.rgignore`,
`.git/info/exclude` and the user's global git excludes decide the same way everywhere:

- hidden files are listed (`--hidden`), `.git` never is (`-g !.git`, file or folder);
- ignore files apply in plain folders too (`--no-require-git`); tracked files that an ignore
  rule matches are left out as well (ripgrep does not read the git index); ignore files above
  the root apply unless the root is the top of a git repository (`flags`);
- symlinks are not followed and not listed (a link may point out of the workspace);
- a folder given as the scope is listed only if the root listing lists it: naming an ignored
  folder does not bring its files back.

No git command runs and no `GIT_*` variable reaches ripgrep, so `GIT_DIR`/`GIT_WORK_TREE` in the
environment cannot point the listing at another repository. The binary comes from the `ripgrep`
wheel (a dependency); `K2LSP_RG` names another one.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from k2lsp.errors import K2lspError

# The ignore policy, shared by every caller that walks the workspace (list and search).
LIST_FLAGS: tuple[str, ...] = (
    "--hidden",
    "--no-require-git",
    "--no-messages",
    "-g",
    "!.git",
)
RG_TIMEOUT_S = 120.0
# Environment variables never passed to ripgrep: git location overrides and ripgrep's own config.
_SCRUB_PREFIXES = ("GIT_",)
_SCRUB = frozenset({"RIPGREP_CONFIG_PATH"})


def flags(root: Path) -> list[str]:
    """The ignore flags for a walk of `root`: `LIST_FLAGS`, plus `--no-ignore-parent` when
    `root` is the top of a git repository (as for git, ignore files above it belong to another
    repository; below a plain folder or a repository's subfolder they still apply)."""
    top = os.path.lexists(Path(root) / ".git")
    return [*LIST_FLAGS, *(["--no-ignore-parent"] if top else [])]


class ListingError(K2lspError):
    """The file listing could not be made (no ripgrep binary, a timeout, a failing run)."""


class RgTimeout(ListingError):
    """ripgrep ran longer than RG_TIMEOUT_S."""


def rg_binary() -> str | None:
    """Path of the ripgrep binary (`K2LSP_RG` overrides), or None when there is none."""
    override = os.environ.get("K2LSP_RG", "").strip()
    if override.lower() in ("none", "0", "off"):  # the retired Python scan: say what is missing
        return None
    return override or _discover_rg()


@functools.lru_cache(maxsize=1)
def _discover_rg() -> str | None:
    exe = "rg.exe" if os.name == "nt" else "rg"
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = os.path.join(folder, exe)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which("rg")


def rg_env() -> dict[str, str]:
    """The environment ripgrep runs with: no `GIT_*` redirections, no ripgrep config file."""
    return {
        k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith(_SCRUB_PREFIXES)
    }


def run_rg(args: Iterable[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run `rg --no-config ARGS` in `cwd`; ListingError when it cannot start or times out."""
    rg = rg_binary()
    if rg is None:
        raise ListingError(
            "the ripgrep binary (rg) was not found; reinstall k2lsp (its `ripgrep` dependency "
            "provides it) or set K2LSP_RG to the path of an rg binary"
        )
    try:
        return subprocess.run(
            [rg, "--no-config", *args],
            cwd=cwd,
            env=rg_env(),
            capture_output=True,
            check=False,
            timeout=RG_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RgTimeout(f"ripgrep took longer than {RG_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise ListingError(f"ripgrep ({rg}) could not be started: {exc.strerror or exc}") from None


def list_files(root: Path, scope: str = "") -> list[str]:
    """Workspace-relative posix paths of the listed files under `scope` ("" = all), sorted."""
    proc = run_rg(["--files", "--null", *flags(root)], Path(root))
    if proc.returncode not in (0, 1):  # 1: nothing listed
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise ListingError(f"listing files failed: {err or f'ripgrep exit {proc.returncode}'}")
    names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    found = sorted({n.removeprefix("./") for n in names if n})
    prefix = _norm(scope)
    if not prefix:
        return found
    return [f for f in found if f == prefix or f.startswith(prefix + "/")]


def scope_listed(root: Path, scope: str) -> bool:
    """Is `scope` (a file or folder) part of the listing: a listed file, or a folder holding
    one? False for ignored paths, `.git`, symlinks and empty or missing folders."""
    prefix = _norm(scope)
    return not prefix or bool(list_files(root, prefix))


def unlisted(root: Path, rels: Iterable[str]) -> set[str]:
    """Those of `rels` that exist (as a file, folder or link) but the listing leaves out: files
    not listed, folders with no listed file beneath. Missing paths are never in the result."""
    items = [r for r in rels if _norm(r)]
    if not items:
        return set()
    listed = set(list_files(root))
    folders = {f.rsplit("/", i)[0] for f in listed for i in range(1, f.count("/") + 1)}
    out: set[str] = set()
    for rel in items:
        norm = _norm(rel)
        if norm in listed or norm in folders:
            continue
        if os.path.lexists(Path(root) / norm):
            out.add(rel)
    return out


def _norm(rel: str) -> str:
    """`rel` as a plain posix relative path ("" for the root)."""
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".")]
    return "/".join(parts)
