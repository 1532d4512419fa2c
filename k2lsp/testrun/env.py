"""The project's own environment, made visible to its tests inside the sandbox.

A user's virtualenv (`.venv`, `venv`, `env`; an activated `$VIRTUAL_ENV` or `$CONDA_PREFIX`
inside the project; poetry/uv/hatch in-project envs are `.venv` too) and `node_modules` are
gitignored, so they are not in the run copy. `project_binds` lists them as read-only binds
`(host_path, sandbox_path)` at the same place inside the run copy, so `.venv/bin/python -m
pytest` and `node_modules/.bin/…` work there. A venv is not relocatable by its scripts'
shebangs, but its interpreter is: tests always run as `<venv>/bin/python -m …`.

`test_env` makes `src/` layouts importable from the run copy (PYTHONPATH=<copy>/src, which
wins over an editable or installed copy in site-packages), and `foreign_paths` checks the
evidence: traceback paths must lie inside the run copy, never in the user's folder or an
installed copy of the project.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

VENV_NAMES = (".venv", "venv", "env", ".env")
_SITE_GLOBS = (
    "/usr/lib/python3/dist-packages",
    "/usr/local/lib/python3*/dist-packages",
    "/usr/local/lib/python3*/site-packages",
)


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() and (path / "bin" / "python").exists()


def _is_conda(path: Path) -> bool:
    return (path / "conda-meta").is_dir() and (path / "bin" / "python").exists()


def find_venv(source: Path) -> Path | None:
    """The project's virtualenv on the host: in the folder, its parents up to the repo top,
    or an activated one that lives inside the project."""
    source = source.resolve()
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        value = os.environ.get(var)
        if value:
            path = Path(value).resolve()
            if (path == source or source in path.parents) and (_is_venv(path) or _is_conda(path)):
                return path
    for folder in (source, *source.parents):
        for name in VENV_NAMES:
            if _is_venv(folder / name) or _is_conda(folder / name):
                return folder / name
        if (folder / ".git").exists() or folder == Path.home():
            break
    return None


def find_node_modules(source: Path) -> list[Path]:
    """`node_modules` folders of the project and of its parents up to the repo top."""
    source = source.resolve()
    out = []
    for folder in (source, *source.parents):
        if (folder / "node_modules").is_dir():
            out.append(folder / "node_modules")
        if (folder / ".git").exists() or folder == Path.home():
            break
    return out


def project_binds(source: Path, root: Path) -> list[tuple[str, str]]:
    """Read-only binds (host, in-sandbox) that put the project's environments into `root`.

    Only environments the run copy lacks; each target folder is created (empty) in the copy
    so the sandbox can mount over it.
    """
    source, root = source.resolve(), root.resolve()
    if source == root:
        return []
    top = _top(source)
    binds: list[tuple[str, str]] = []
    for host in [*filter(None, [find_venv(source)]), *find_node_modules(source)]:
        try:
            rel = host.relative_to(top)
        except ValueError:
            continue
        prefix = source.relative_to(top)
        target = Path(os.path.normpath(root / os.path.relpath(top / rel, top / prefix)))
        if not _inside(target, _copy_top(root, source, top)) or not _safe_source(host, top):
            continue
        if target.is_symlink() or target.is_file():
            continue  # the copy has its own entry there: never mount through it
        if target.is_dir() and any(target.iterdir()):
            continue  # the copy has its own (e.g. a non-git folder copied whole)
        target.mkdir(parents=True, exist_ok=True)
        binds.append((str(host.resolve()), str(target)))
    return binds


def _safe_source(host: Path, top: Path) -> bool:
    """An environment folder worth exposing: it looks like one, and a symlink to it does not
    lead into the user's home outside the project (a hostile `node_modules -> ~/.ssh`)."""
    real = host.resolve()
    home = Path.home().resolve()
    if real != home and home in real.parents and not _inside(real, top.resolve()):
        return False
    if host.name == "node_modules":
        return (
            (real / ".bin").is_dir()
            or (real / ".package-lock.json").is_file()
            or any((d / "package.json").is_file() for d in list(real.iterdir())[:50])
        )
    return _is_venv(real) or _is_conda(real)


def _top(source: Path) -> Path:
    for folder in (source, *source.parents):
        if (folder / ".git").exists():
            return folder
    return source


def _copy_top(root: Path, source: Path, top: Path) -> Path:
    depth = len(source.relative_to(top).parts)
    return root.parents[depth - 1] if depth else root


def _inside(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def venv_in(root: Path, binds: list[tuple[str, str]]) -> tuple[str, Path] | None:
    """(interpreter as the sandbox sees it, host prefix) of the env the tests should use."""
    for host, target in binds:
        if Path(target).name != "node_modules":
            return f"{os.path.relpath(target, root)}/bin/python", Path(host)
    for folder in (root, *root.parents):
        for name in VENV_NAMES:
            if _is_venv(folder / name) or _is_conda(folder / name):
                rel = os.path.relpath(folder / name, root)
                return f"{rel}/bin/python", folder / name
        if (folder / ".git").exists():
            break
    return None


def has_module(prefix: Path | None, name: str) -> bool:
    """Whether the env at `prefix` (None: the host's python3) can import `name`."""
    if prefix is not None:
        sites = list(prefix.glob("lib/python3*/site-packages"))
        cfg = (prefix / "pyvenv.cfg").read_text(errors="replace") if prefix.exists() else ""
        if re.search(r"include-system-site-packages\s*=\s*true", cfg):
            sites += [p for g in _SITE_GLOBS for p in Path("/").glob(g.lstrip("/"))]
    else:
        sites = [p for g in _SITE_GLOBS for p in Path("/").glob(g.lstrip("/"))]
    return any((s / name).is_dir() or (s / f"{name}.py").is_file() for s in sites)


def src_paths(root: Path) -> list[str]:
    """`src/` (and `lib/`) folders holding the project's importable code."""
    out = []
    for name in ("src", "lib"):
        folder = root / name
        if folder.is_dir() and any(
            (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
            for p in folder.iterdir()
        ):
            out.append(str(folder))
    return out


def test_env(root: Path, binds: list[tuple[str, str]]) -> dict[str, str]:
    """Environment variables for a test run in `root`."""
    env: dict[str, str] = {}
    paths = src_paths(root)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    bins = [f"{t}/.bin" for _h, t in binds if Path(t).name == "node_modules"]
    if (root / "node_modules" / ".bin").is_dir():
        bins.append(str(root / "node_modules" / ".bin"))
    if bins:
        env["PATH"] = os.pathsep.join([*bins, "/usr/local/bin", "/usr/bin", "/bin"])
    return env


_TB_PATH = re.compile(r'File "(?P<a>/[^"]+\.py)", line \d+|^(?P<b>/\S+\.py):\d+:', re.M)


def foreign_paths(output: str, root: Path, source: Path | None) -> list[str]:
    """Paths in tracebacks that point at the project's code outside the run copy: the user's
    own folder, or an installed copy (site-packages) of one of the project's packages."""
    names = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for src in src_paths(root):
        names |= {p.name for p in Path(src).iterdir() if (p / "__init__.py").exists()}
    out: list[str] = []
    for m in _TB_PATH.finditer(output):
        path = m["a"] or m["b"]
        if path.startswith(str(root) + "/") and "-packages/" not in path:
            continue  # the run copy's own code (a bound .venv's site-packages is not)
        in_source = source is not None and path.startswith(str(source) + "/")
        in_site = "-packages/" in path and path.split("-packages/", 1)[1].split("/")[0] in names
        if (in_source or in_site) and path not in out:
            out.append(path)
    return out


@dataclass
class EnvSummary:
    """What `project_binds` found, for messages."""

    binds: list[tuple[str, str]]

    def describe(self) -> str:
        """One line for the preflight event and doctor."""
        if not self.binds:
            return "no project environment (.venv/node_modules) found outside the run copy"
        return "; ".join(f"{h} -> {t} (read-only)" for h, t in self.binds)
