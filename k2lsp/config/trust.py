"""Workspace trust: a repository's own k2lsp configuration (`k2lsp.toml`, `[tool.k2lsp]` in
`pyproject.toml`) may change where the API key goes or what runs outside the sandbox only after
the user trusted that repository, as VS Code, Codex and direnv do it.

Trust is kept in `$XDG_CONFIG_HOME/k2lsp/trusted.json` (default `~/.config/k2lsp/trusted.json`),
keyed by the resolved repository path and a hash of its k2lsp configuration sources: editing
`k2lsp.toml` or the `[tool.k2lsp]` table revokes the trust until the user looks again
(`k2lsp trust [PATH] [--revoke] [--list]`). `K2LSP_TRUST_REPO=1` trusts every repository for
one process (CI jobs that run k2lsp on their own checkout).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from k2lsp.errors import UsageError

# Settings that decide where the key goes or what runs outside the sandbox. A repository's
# own files may set them only once the user trusted it (see docs/security.md).
SENSITIVE_KEYS: tuple[str, ...] = (
    "provider",  # picks the host and which env var's key is sent
    "base_url",  # where the key is sent
    "api_key",
    "sandbox",  # "none" runs the model's commands on the host
    "sandbox_image",
    "sandbox_profile",  # a profile can turn the network on and mount host paths
    "sandbox_limits",  # same keys as a profile (network, ro_paths)
    "allow_commands",  # commands run without asking
    "allow_secrets",  # lets the model read .env, keys and the like
    "secret_globs",  # a `!pattern` lifts a default secret pattern
    "state_dir",  # where transcripts, trajectories and checkpoints are written
    "mcp",  # MCP servers are processes started on the host, outside the sandbox
)
TRUST_ENV = "K2LSP_TRUST_REPO"
_STORE_VERSION = 1


def store_path() -> Path:
    """`$XDG_CONFIG_HOME/k2lsp/trusted.json` (default `~/.config/k2lsp/trusted.json`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "k2lsp" / "trusted.json"


def env_trusts() -> bool:
    """Does the environment trust every repository (`K2LSP_TRUST_REPO=1`)?"""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def config_sources(repo: Path) -> list[Path]:
    """The repository files k2lsp reads its configuration from (existing ones)."""
    root = Path(repo)
    return [p for p in (root / "pyproject.toml", root / "k2lsp.toml") if p.is_file()]


def config_hash(repo: Path) -> str:
    """sha256 over `k2lsp.toml` (bytes) and the `[tool.k2lsp]` table of `pyproject.toml`
    (canonical JSON, so editing the rest of pyproject.toml keeps the trust)."""
    root = Path(repo)
    h = hashlib.sha256()
    local = root / "k2lsp.toml"
    h.update(b"k2lsp.toml\0")
    h.update(local.read_bytes() if local.is_file() else b"<absent>")
    h.update(b"\0[tool.k2lsp]\0")
    h.update(_tool_table(root / "pyproject.toml"))
    return "sha256:" + h.hexdigest()


def _tool_table(pyproject: Path) -> bytes:
    if not pyproject.is_file():
        return b"<absent>"
    raw = pyproject.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return b"<invalid>" + hashlib.sha256(raw).digest()  # any edit changes it
    table = data.get("tool", {}).get("k2lsp") if isinstance(data.get("tool"), dict) else None
    if table is None:
        return b"<absent>"
    return json.dumps(table, sort_keys=True, default=str).encode("utf-8")


def _key(repo: Path) -> str:
    return str(Path(repo).expanduser().resolve())


def load_store() -> dict[str, dict[str, Any]]:
    """Trusted repositories: resolved path -> {hash, trusted_at}. A broken file trusts nothing."""
    path = store_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    repos = data.get("repos") if isinstance(data, dict) else None
    return {k: v for k, v in (repos or {}).items() if isinstance(v, dict)}


def _save_store(repos: dict[str, dict[str, Any]]) -> None:
    path = store_path()
    body = json.dumps({"version": _STORE_VERSION, "repos": repos}, indent=2, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".trusted-", dir=path.parent)
    except OSError as exc:
        raise UsageError(
            f"cannot write the trust file {path}: {exc}; check that folder's permissions "
            "(or set XDG_CONFIG_HOME)"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_trusted(repo: Path) -> bool:
    """Did the user trust `repo` as its configuration is now (or does the env trust all)?"""
    if env_trusts():
        return True
    entry = load_store().get(_key(repo))
    return entry is not None and entry.get("hash") == config_hash(repo)


def trust(repo: Path) -> str:
    """Trust `repo` with its current configuration; returns the hash recorded."""
    path = Path(repo).expanduser()
    if not path.is_dir():
        raise UsageError(f"{str(path)!r} is not a folder; pass the repository folder to trust")
    repos = load_store()
    digest = config_hash(path)
    repos[_key(path)] = {
        "hash": digest,
        "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save_store(repos)
    return digest


def revoke(repo: Path) -> bool:
    """Forget the trust of `repo`; False when it was not trusted."""
    repos = load_store()
    if repos.pop(_key(repo), None) is None:
        return False
    _save_store(repos)
    return True


def notice(repo: Path, ignored: list[str]) -> str:
    """The one-line notice for keys ignored because `repo` is not trusted."""
    return (
        f"k2lsp: {Path(repo)} is not trusted, so its k2lsp configuration keys "
        f"{', '.join(ignored)} are ignored; review {' and '.join(_names(repo))} and run "
        f"`k2lsp trust {_key(repo)}` to apply them"
    )


def _names(repo: Path) -> list[str]:
    return [p.name for p in config_sources(repo)] or ["k2lsp.toml"]


def cli(argv: list[str]) -> int:
    """`k2lsp trust [PATH] [--revoke] [--list]`."""
    p = argparse.ArgumentParser(
        prog="k2lsp trust",
        description="Let a repository's k2lsp.toml / [tool.k2lsp] set the keys that decide "
        f"where the API key goes or what runs outside the sandbox ({', '.join(SENSITIVE_KEYS)}). "
        "Editing those files revokes the trust.",
    )
    p.add_argument("path", nargs="?", default=".", help="repository folder (default: .)")
    p.add_argument("--revoke", action="store_true", help="forget the trust of PATH")
    p.add_argument("--list", action="store_true", help="list trusted repositories")
    args = p.parse_args(argv)
    if args.list:
        for path, entry in sorted(load_store().items()):
            current = Path(path).is_dir() and entry.get("hash") == config_hash(Path(path))
            state = "trusted" if current else "changed since trusted (ignored)"
            print(f"{path}\t{state}\t{entry.get('trusted_at', '')}")
        return 0
    repo = Path(args.path).expanduser()
    if args.revoke:
        done = revoke(repo)
        print(f"{_key(repo)}: {'trust revoked' if done else 'was not trusted'}", file=sys.stderr)
        return 0
    trust(repo)
    sources = ", ".join(str(s) for s in config_sources(repo)) or "no k2lsp configuration yet"
    print(f"trusted {_key(repo)} ({sources}); editing them revokes the trust", file=sys.stderr)
    return 0
