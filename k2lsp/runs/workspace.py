"""The workspace a run works in: path confinement, ignore rules, secrets, safe file reading.

Every tool path goes through `Workspace.resolve`, which refuses `..` escapes, absolute paths
outside the root, symlinks pointing out of it and any component named `.git` (in any letter
case): git metadata is never read or written through tools. Files matching the secret denylist
(`DEFAULT_SECRET_GLOBS` plus the `secret_globs` setting; a `!pattern` entry lifts a default)
are not read unless the `allow_secrets` setting is on.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from k2lsp.code import filelist
from k2lsp.errors import PathError
from k2lsp.fs import safefs

# Files larger than this are refused by read-whole-file helpers (tools page them instead).
MAX_TEXT_BYTES = 8 * 1024 * 1024

# Files never read for the model unless the user allows it (matched against the file name and
# the workspace-relative path).
DEFAULT_SECRET_GLOBS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    ".htpasswd",
    "credentials",
    "credentials.*",
    "*credentials*.json",
    "*.tfvars",
    "secrets.y*ml",
    "secrets.json",
    "secrets.toml",
    ".aws/credentials",
    ".docker/config.json",
    "*.kdbx",
)


@dataclass
class Workspace:
    """A confined folder. `root` is absolute and resolved."""

    root: Path
    # Unsaved editor buffers (relative posix path -> text) that override the disk content.
    overlay: dict[str, str] = field(default_factory=dict)
    # Extra secret patterns (a `!pattern` entry removes a default one); None = defaults only.
    secret_globs: list[str] | None = None
    allow_secrets: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()

    @classmethod
    def from_settings(
        cls, root: Path | str, settings: Any, overlay: dict[str, str] | None = None
    ) -> Workspace:
        """A workspace honouring the secret settings of a `k2lsp.config.settings.Settings`."""
        return cls(
            Path(root),
            overlay=dict(overlay or {}),
            secret_globs=list(getattr(settings, "secret_globs", None) or []),
            allow_secrets=bool(getattr(settings, "allow_secrets", False)),
        )

    def resolve(self, path: str | os.PathLike[str], *, must_exist: bool = False) -> Path:
        """Absolute path of `path` inside the workspace, or PathError saying why not."""
        raw = os.fspath(path)
        if "\x00" in raw:
            raise PathError(f"path {raw!r} contains a NUL byte")
        _refuse_git_meta(raw, Path(raw).parts)
        try:
            candidate = Path(raw).expanduser()
            if not candidate.is_absolute():
                candidate = self.root / candidate
            # Resolve symlinks of existing parts; a not-yet-existing tail is resolved lexically.
            resolved = candidate.resolve(strict=False)
            if not _is_within(resolved, self.root):
                raise PathError(
                    f"path {raw!r} is outside the workspace {self.root}; "
                    "use a path relative to the workspace root"
                )
            _refuse_git_meta(raw, resolved.relative_to(self.root).parts)
            if _unresolved_link(resolved, self.root):
                raise PathError(f"path {raw!r} goes through a symlink loop or a broken link")
            if must_exist and not resolved.exists():
                raise PathError(f"{self.rel(resolved)} does not exist")
        except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, names too long
            raise PathError(f"path {raw!r} cannot be used: {exc}") from None
        return resolved

    def resolve_entry(self, path: str | os.PathLike[str]) -> Path:
        """Like `resolve`, but a final symlink is kept as the link itself (not followed)."""
        raw = os.fspath(path)
        name = Path(raw).name
        if name in ("", ".", ".."):
            return self.resolve(raw)
        parent = self.resolve(Path(raw).parent)
        entry = parent / name
        if entry == self.root:
            raise PathError(f"path {raw!r} names the workspace root, not a file")
        return entry

    # ---- secrets ------------------------------------------------------------------------
    def secret_patterns(self) -> list[str]:
        """The effective secret denylist."""
        globs = list(DEFAULT_SECRET_GLOBS)
        for pat in self.secret_globs or []:
            if pat.startswith("!"):
                globs = [g for g in globs if g != pat[1:]]
            elif pat not in globs:
                globs.append(pat)
        return globs

    def is_secret(self, rel: str) -> bool:
        """Does workspace-relative `rel` match the secret denylist?"""
        posix = PurePosixPath(rel.replace(os.sep, "/"))
        text, name = posix.as_posix(), posix.name
        for pat in self.secret_patterns():
            if "/" in pat:
                if fnmatch.fnmatchcase(text, pat) or fnmatch.fnmatchcase(text, "*/" + pat):
                    return True
            elif fnmatch.fnmatchcase(name, pat):
                return True
        return False

    def check_readable(self, path: str | os.PathLike[str]) -> Path:
        """The resolved path, or PathError if it is a secret file the user has not allowed."""
        abs_path = self.resolve(path)
        rel = self.rel(abs_path)
        if not self.allow_secrets and self.is_secret(rel):
            raise PathError(
                f"{rel} matches the secret denylist and is not read; if the user wants it "
                "read, they set `allow_secrets = true` in k2lsp.toml or lift the pattern "
                'with `secret_globs = ["!<pattern>"]`'
            )
        return abs_path

    # ---- ignore rules -------------------------------------------------------------------
    def ignored(self, rels: Iterable[str]) -> set[str]:
        """Those of `rels` (workspace-relative, existing) that the file listing leaves out:
        files excluded by .gitignore/.ignore/.rgignore rules, `.git`, symlinks, and folders
        with no listed file beneath. The same engine as `list_files`, `search` and the repo
        map (`k2lsp.code.filelist`), so all four agree on which files exist."""
        return filelist.unlisted(self.root, rels)

    def is_ignored(self, rel: str) -> bool:
        """Does the file listing leave out workspace-relative `rel`?"""
        return rel in self.ignored([rel])

    def rel(self, path: Path) -> str:
        """Workspace-relative posix form of an absolute path inside the root."""
        try:
            rel = Path(path).resolve(strict=False).relative_to(self.root)
        except ValueError:
            rel = Path(os.path.relpath(path, self.root))
        text = rel.as_posix()
        return "." if text in ("", ".") else text

    def read_text(self, path: str | os.PathLike[str]) -> str:
        """Text of a workspace file (overlay first), refusing binary, non-UTF-8 and huge files."""
        abs_path = self.check_readable(path)
        rel = self.rel(abs_path)
        if rel in self.overlay:
            return self.overlay[rel]
        if not abs_path.exists():
            raise PathError(f"{rel} does not exist")
        if abs_path.is_dir():
            raise PathError(f"{rel} is a directory, not a file")
        size = abs_path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise PathError(
                f"{rel} is {size:,} bytes, over the {MAX_TEXT_BYTES:,}-byte limit for "
                "whole-file use"
            )
        # never through a link a sandboxed process swapped in after the check above
        with safefs.open_read(self.root, abs_path.relative_to(self.root)) as fh:
            data = fh.read(MAX_TEXT_BYTES + 1)
        return decode_text(data, rel)


def decode_text(data: bytes, label: str) -> str:
    """Decode UTF-8 text, or raise PathError naming binary / non-UTF-8 content."""
    if b"\x00" in data[:8192]:
        raise PathError(f"{label} is a binary file; it cannot be read or edited as text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PathError(
            f"{label} is not valid UTF-8 (byte {exc.start}); it cannot be edited as text"
        ) from None


def is_git_meta(name: str) -> bool:
    """Is this path component `.git` (any letter case, trailing dots or spaces ignored)?"""
    return name.rstrip(". ").lower() == ".git" and name[:4].lower() == ".git"


def _refuse_git_meta(raw: str, parts: Iterable[str]) -> None:
    if any(is_git_meta(part) for part in parts):
        raise PathError(
            f"path {raw!r} is inside git metadata (.git); tools never read or write it. "
            "Use git_status, git_diff, git_log or git_show to look at history"
        )


def _unresolved_link(path: Path, root: Path) -> bool:
    """Did resolution stop early (a symlink loop leaves links and `..` in the result)?"""
    rel_parts = path.relative_to(root).parts
    if ".." in rel_parts:
        return True
    current = root
    for part in rel_parts:
        current = current / part
        if current.is_symlink():
            return True
        if not current.exists():
            return False  # the rest does not exist yet: nothing left to follow
    return False


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
