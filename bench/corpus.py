"""A corpus of real, pinned packages (PyPI sdists and npm tarballs) in the shapes people have.

Layout under $K2TEST_CI_CACHE/corpus (default /var/cache/k2lsp-ci/corpus), built once and kept:

    src/<name>-<version>/<archive>     the downloaded sdist / tarball
    pkgs/<name>-<version>/             the unpacked source (never modified)
    envs/<name>-<version>/.venv        the project's own test environment (pinned requirements,
    envs/<name>-<version>/node_modules   NOT the package itself: tests must import the source)
    envs/<name>-<version>/.k2lsp-ready stamp: the env is complete

`python bench/corpus.py` (run by .ci/test) downloads and builds what is missing and prints the
list. `user_project(pkg, dest)` makes the folder a user would have: a git repository of the
source with the gitignored `.venv` / `node_modules` next to it (symlinks to the env).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("K2TEST_CI_CACHE", "/var/cache/k2lsp-ci")) / "corpus"
# The envs must work for any uid (the sandbox's, an ordinary user's): not an interpreter under
# /root (pyenv), the system's.
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
PYTEST = [
    "pytest==9.2.0",
    "iniconfig==2.3.1",
    "packaging==26.4",
    "pluggy==1.7.0",
    "pygments==2.21.0",
]


@dataclass(frozen=True)
class Package:
    """One corpus package: where it comes from, its shape, its env and its own test command."""

    name: str
    version: str
    registry: str  # pypi | npm
    shape: str
    direct: str  # the project's own runner, run in the package folder with its env
    requires: list[str] = field(default_factory=list)  # pip pins / npm deps of the env
    src_layout: bool = False

    @property
    def key(self) -> str:
        """`name-version`, the folder name everywhere in the cache."""
        return f"{self.name}-{self.version}"

    @property
    def source(self) -> Path:
        """The unpacked, pristine source."""
        return CACHE / "pkgs" / self.key

    @property
    def env(self) -> Path:
        """The folder holding `.venv` or `node_modules`."""
        return CACHE / "envs" / self.key


UT = "python -m unittest discover -v"
PT = "python -m pytest -p no:cacheprovider"
PACKAGES = [
    Package(
        "appdirs", "1.4.4", "pypi", "unittest only, tox runs setup.py test", f"{UT} -s test -t ."
    ),
    Package("bottle", "0.12.25", "pypi", "7,000-line module, unittest suite", f"{UT} -s test -t ."),
    Package(
        "decorator",
        "5.1.1",
        "pypi",
        "src/ layout, unittest in src/tests",
        f"{UT} -s src/tests -t src -p 'test*.py'",
    ),
    Package("idna", "3.6", "pypi", "unittest only, pyproject (flit)", f"{UT} -s tests -t ."),
    Package(
        "more-itertools",
        "10.2.0",
        "pypi",
        "tox `python -m unittest`, Makefile",
        f"{UT} -s tests -t .",
    ),
    Package("pathspec", "0.12.1", "pypi", "tox `python -m unittest`", f"{UT} -s tests -t ."),
    Package(
        "jsonpointer", "2.4", "pypi", "root tests.py (unittest)", f"{UT} -s . -t . -p 'tests.py'"
    ),
    Package(
        "jsonpatch",
        "1.33",
        "pypi",
        "root tests.py + dependency",
        f"{UT} -s . -t . -p 'tests.py'",
        ["jsonpointer==2.4"],
    ),
    Package(
        "schedule",
        "1.2.1",
        "pypi",
        "root test_schedule.py, dependency mock",
        f"{UT} -s . -t . -p 'test_*.py'",
        ["mock==5.2.0"],
    ),
    Package(
        "isodate",
        "0.6.1",
        "pypi",
        "src/ layout, tests inside the package, dependency six",
        f"{UT} -s src/isodate/tests -t src",
        ["six==1.17.0"],
        True,
    ),
    Package("xmltodict", "0.13.0", "pypi", "tests/ without __init__.py", f"{PT}", PYTEST),
    Package("inflection", "0.5.1", "pypi", "plain pytest functions at the root", f"{PT}", PYTEST),
    Package(
        "webencodings",
        "0.5.1",
        "pypi",
        "plain pytest functions in webencodings/tests.py",
        f"{PT} webencodings/tests.py",
        PYTEST,
    ),
    Package("toolz", "0.12.0", "pypi", "plain pytest functions, two packages", f"{PT}", PYTEST),
    Package("six", "1.16.0", "pypi", "pytest configured in setup.cfg", f"{PT}", PYTEST),
    Package(
        "tabulate",
        "0.9.0",
        "pypi",
        "tox.ini commands with --doctest-modules",
        f"{PT} -v --doctest-modules --ignore benchmark.py",
        PYTEST,
    ),
    Package(
        "ordered-set", "4.1.0", "pypi", "pytest.ini addopts with doctest globs", f"{PT}", PYTEST
    ),
    Package("colorama", "0.4.6", "pypi", "unittest classes, pytest environment", f"{PT}", PYTEST),
    Package(
        "cachetools",
        "5.3.2",
        "pypi",
        "src/ layout, tox --cov without pytest-cov",
        f"{PT}",
        PYTEST,
        True,
    ),
    Package(
        "semver",
        "3.0.2",
        "pypi",
        "src/ layout, addopts names pytest-cov flags",
        f"{PT} -o 'addopts=--import-mode=importlib --doctest-glob=*.rst --doctest-modules'",
        PYTEST,
        True,
    ),
    Package(
        "termcolor",
        "2.4.0",
        "pypi",
        "src/ layout, tox {envpython} -m pytest --cov",
        f"{PT}",
        PYTEST,
        True,
    ),
    Package(
        "pluggy",
        "1.4.0",
        "pypi",
        "src/ layout, tox {env:…:pytest}; its own pluggy pinned in env",
        f"{PT}",
        [*PYTEST[:3], "pluggy==1.4.0", PYTEST[4]],
        True,
    ),
    Package(
        "iniconfig",
        "1.1.1",
        "pypi",
        "src/ layout, installed copy in the env (must not be used)",
        f"{PT}",
        [
            "pytest==7.1.3",
            "iniconfig==1.1.1",
            "attrs==26.1.0",
            "py==1.11.0",
            "tomli==2.5.0",
            "packaging==26.4",
            "pluggy==1.7.0",
        ],
        True,
    ),
    Package(
        "mccabe",
        "0.7.0",
        "pypi",
        "pytest with hypothesis dependencies",
        f"{PT}",
        [*PYTEST, "hypothesis==6.170.17", "hypothesmith==0.3.3"],
    ),
    Package(
        "minimist",
        "1.2.8",
        "npm",
        "npm test with pretest lint + posttest audit, tape",
        "node_modules/.bin/tape 'test/**/*.js'",
        ["tape@5.6.3"],
    ),
    Package(
        "fastq",
        "1.17.1",
        "npm",
        "npm test chain: standard lint, nyc coverage, tape",
        "node_modules/.bin/tape test/test.js test/promise.js",
        ["tape@5.7.5", "reusify@1.0.4", "async@3.2.5", "neo-async@2.6.2"],
    ),
    Package(
        "json-schema-traverse",
        "1.0.0",
        "npm",
        "eslint + nyc npm run test-spec (mocha)",
        "node_modules/.bin/mocha spec -R spec",
        ["mocha@8.4.0"],
    ),
]
BY_NAME = {p.name: p for p in PACKAGES}


def _run(argv: list[str], cwd: Path | None = None) -> None:
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _download(pkg: Package) -> Path:
    folder = CACHE / "src" / pkg.key
    found = sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.tgz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    if pkg.registry == "pypi":
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
              "-d", str(folder), f"{pkg.name}=={pkg.version}"])  # fmt: skip
    else:
        _run(["npm", "pack", "--silent", f"{pkg.name}@{pkg.version}"], cwd=folder)
    return (sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.tgz")))[0]


def _unpack(pkg: Package, archive: Path) -> None:
    if pkg.source.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(dir=CACHE / "pkgs", prefix=f".{pkg.key}."))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (inner,) = [p for p in tmp.iterdir() if p.is_dir()]
    inner.rename(pkg.source)
    shutil.rmtree(tmp)


def _build_env(pkg: Package) -> None:
    stamp = pkg.env / ".k2lsp-ready"
    if stamp.exists():
        return
    pkg.env.mkdir(parents=True, exist_ok=True)
    if pkg.registry == "pypi":
        venv = pkg.env / ".venv"
        if not (venv / "bin" / "python").exists():
            _run([SYSTEM_PYTHON, "-m", "venv", str(venv)])
        if pkg.requires:
            _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", *pkg.requires])  # fmt: skip
    else:
        deps = dict(r.rsplit("@", 1) for r in pkg.requires)
        manifest = {"name": "k2lsp-corpus-env", "private": True, "dependencies": deps}
        (pkg.env / "package.json").write_text(json.dumps(manifest, indent=2))
        _run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=pkg.env)
    stamp.write_text("")


def ensure(packages: list[Package] | None = None) -> list[Package]:
    """Download, unpack and build the env of every package that is not ready yet."""
    for sub in ("src", "pkgs", "envs"):
        (CACHE / sub).mkdir(parents=True, exist_ok=True)
    ready = []
    for pkg in packages or PACKAGES:
        _unpack(pkg, _download(pkg))
        _build_env(pkg)
        ready.append(pkg)
    return ready


def available(pkg: Package) -> bool:
    """The package and its env are in the cache (tests skip the ones that are not)."""
    return pkg.source.is_dir() and (pkg.env / ".k2lsp-ready").exists()


def env_links(pkg: Package) -> list[str]:
    """The env entries (`.venv`, `node_modules`) a user's folder has next to the source."""
    return [n for n in (".venv", "node_modules") if (pkg.env / n).exists()]


def user_project(pkg: Package, dest: Path, git: bool = True) -> Path:
    """A user's folder for `pkg`: the source (a git repo when `git`) plus its gitignored env."""
    shutil.copytree(pkg.source, dest, symlinks=True)
    for name in env_links(pkg):
        (dest / name).symlink_to(pkg.env / name)
    if git:
        env = {**os.environ, "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@example.com",
               "GIT_COMMITTER_NAME": "u", "GIT_COMMITTER_EMAIL": "u@example.com"}  # fmt: skip
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
        (dest / ".gitignore").write_text(".venv\nnode_modules\n__pycache__/\n*.pyc\n")
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
        subprocess.run(["git", "commit", "-qm", "import"], cwd=dest, check=True, env=env)
    return dest


def direct_command(pkg: Package, folder: Path) -> tuple[str, dict[str, str]]:
    """The project's own runner for `folder` and its environment variables."""
    env = {"PYTHONDONTWRITEBYTECODE": "1", "CI": "1", "NO_COLOR": "1"}
    if pkg.src_layout:
        env["PYTHONPATH"] = str(folder / "src")
    cmd = pkg.direct
    if cmd.startswith("python "):
        cmd = f"{folder}/.venv/bin/python " + cmd[len("python ") :]
    return cmd, env


if __name__ == "__main__":
    for p in ensure():
        print(f"{p.key:28} {p.registry:5} {p.shape}")
