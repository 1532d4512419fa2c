"""Which language server serves which file, where its program is, and how it is confined.

Defaults per language (first one found wins; `lsp_servers` in the settings overrides a
language's command, an empty list turns the language off):

    python      jedi-language-server | basedpyright-langserver --stdio | pyright-langserver --stdio
    typescript  typescript-language-server --stdio   (also .js/.jsx/.mjs/.cjs)
    go          gopls          rust  rust-analyzer          c  clangd

A server runs on the run copy, which is untrusted: with `lsp_confine` `auto` (default) or
`bwrap` it runs under bubblewrap with no network, a read-only view of the machine, the run copy
read-only (k2lsp applies edits itself, through the syntax gate), a private /tmp and an empty
home; `bwrap` refuses to start a server when bubblewrap does not work, `auto` then runs it
unconfined and says so, `none` never confines.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k2lsp.lspc.rpc import LspError

DEFAULT_SERVERS: dict[str, list[list[str]]] = {
    "python": [
        ["jedi-language-server"],
        ["basedpyright-langserver", "--stdio"],
        ["pyright-langserver", "--stdio"],
    ],
    "typescript": [["typescript-language-server", "--stdio"]],
    "go": [["gopls"]],
    "rust": [["rust-analyzer"]],
    "c": [["clangd"]],
}
EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".js": "typescript",
    ".jsx": "typescript",
    ".mjs": "typescript",
    ".cjs": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "c",
    ".cpp": "c",
    ".hpp": "c",
}
LANGUAGE_IDS = {".ts": "typescript", ".tsx": "typescriptreact", ".js": "javascript"}
LANGUAGE_IDS |= {".jsx": "javascriptreact", ".mjs": "javascript", ".cjs": "javascript"}
LANGUAGE_IDS |= {".mts": "typescript", ".cts": "typescript", ".cc": "cpp", ".cpp": "cpp"}
LANGUAGE_IDS |= {".hpp": "cpp", ".pyi": "python"}


def language_of(rel: str) -> str | None:
    """The server language of a file, by extension."""
    return EXTENSIONS.get(os.path.splitext(rel)[1].lower())


def language_id(rel: str) -> str:
    """The LSP languageId of a file."""
    ext = os.path.splitext(rel)[1].lower()
    return LANGUAGE_IDS.get(ext) or EXTENSIONS.get(ext, "plaintext")


@dataclass(frozen=True)
class ServerSpec:
    """A server found for a language: its command (program resolved) and its name."""

    language: str
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        """The program's base name (what tool results say)."""
        return Path(self.argv[0]).name


def _search_path() -> str:
    """PATH plus the running interpreter's bin folder (servers installed next to k2lsp)."""
    extra = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return f"{path}{os.pathsep}{extra}" if extra not in path.split(os.pathsep) else path


def find_server(language: str, settings: Any = None) -> ServerSpec | None:
    """The first configured or default server for `language` whose program exists."""
    configured = (getattr(settings, "lsp_servers", None) or {}).get(language)
    candidates = [configured] if configured is not None else DEFAULT_SERVERS.get(language, [])
    for argv in candidates:
        if not argv:
            return None  # configured as [] : the language has no server
        program = shutil.which(argv[0], path=_search_path())
        if program:
            return ServerSpec(language, (program, *argv[1:]))
    return None


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """Can bubblewrap make a network-less, read-only sandbox here?"""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        probe = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-net", "--die-with-parent", "true"],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def confine(spec: ServerSpec, root: Path, mode: str) -> tuple[list[str], str]:
    """The argv that runs `spec` on `root` under `mode` (auto|bwrap|none) and a note saying
    how it is confined."""
    if mode == "none":
        return list(spec.argv), "unconfined (lsp_confine = none)"
    if not bwrap_works():
        if mode == "bwrap":
            raise LspError(
                "lsp_confine = bwrap but bubblewrap does not work here; install bubblewrap "
                "(and allow user namespaces) or set lsp_confine = auto"
            )
        return list(spec.argv), "unconfined (bubblewrap is not available)"
    return bwrap_argv(spec, root), "bubblewrap: no network, read-only files, private /tmp"


def bwrap_argv(spec: ServerSpec, root: Path) -> list[str]:
    """bubblewrap around the server: the machine read-only with an empty home and /tmp, the
    run copy and the program's own folders bound back read-only, no network, own PID space."""
    exe = shutil.which("bwrap") or "bwrap"
    home = Path(os.environ.get("HOME") or "/root").resolve()
    keep = [root.resolve(), *_program_dirs(spec)]
    argv = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    if home != Path("/"):
        argv += ["--tmpfs", str(home)]
    for path in dict.fromkeys(keep):
        argv += ["--ro-bind-try", str(path), str(path)]
    argv += ["--setenv", "HOME", "/tmp/home", "--setenv", "XDG_CACHE_HOME", "/tmp/cache"]
    argv += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    argv += ["--new-session", "--chdir", str(root), "--", *spec.argv]
    return argv


def _program_dirs(spec: ServerSpec) -> list[Path]:
    """Folders a server program needs that may sit under the hidden home: its venv or
    node prefix, and the interpreter it runs on."""
    program = Path(spec.argv[0])
    dirs = [program.parent.parent, program.resolve().parent.parent]
    try:
        first = program.read_bytes()[:256].split(b"\n", 1)[0]
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        interp = first[2:].strip().split(b" ")[0].decode("utf-8", "replace")
        if interp and not interp.endswith("/env"):
            real = Path(interp).resolve()
            dirs += [Path(interp).parent.parent, real.parent.parent]
            dirs += [Path(p) for p in _base_prefix(real)]
    node = shutil.which("node")
    if node:
        dirs.append(Path(node).resolve().parent.parent)
    return [d for d in dirs if str(d) not in ("/", "/usr")]


def _base_prefix(python: Path) -> list[str]:
    cfg = python.parent.parent / "pyvenv.cfg"
    out = [sys.base_prefix] if Path(sys.executable).resolve() == python else []
    try:
        for line in cfg.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                out.append(str(Path(value.strip()).parent))
    except OSError:
        pass
    return out
