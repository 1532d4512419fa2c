"""Which files of a repository the code tools (repo map, references) look at: the files the one
listing engine lists (`k2lsp.code.filelist`, ripgrep `--files`) that a grammar covers.

Dependency and build folders are left out by the repository's own `.gitignore`/`.ignore`, as
they are for `list_files` and `search`; there is no second skip list here.
"""

from __future__ import annotations

from pathlib import Path

from k2lsp.code.filelist import list_files
from k2lsp.code.languages import EXTENSIONS


def is_source(name: str) -> bool:
    """Does a grammar cover a file of this name?"""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in EXTENSIONS


def list_source_files(root: Path) -> list[str]:
    """Workspace-relative posix paths of every listed file a grammar covers, sorted."""
    return [rel for rel in list_files(Path(root)) if is_source(rel.rsplit("/", 1)[-1])]
