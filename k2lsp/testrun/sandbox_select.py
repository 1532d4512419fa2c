"""Which sandbox can actually run this project's tests, and the project's environment in it.

`auto` means: the host toolchain under bubblewrap (it has the interpreters the user's `.venv`
links to, and node), unless the project declares a container environment
(`.devcontainer/devcontainer.json` with an image or Dockerfile) or the user configured an image,
in which case docker. A `.venv` is useless in the docker image (its interpreter link points at
the host), so a project with one stays on bwrap when it can. `preflight` says, before the run
starts, what the tests will run with, or why nothing can run them and how to fix it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from k2lsp.errors import K2lspError
from k2lsp.testrun.env import project_binds

DEFAULT_IMAGE = "k2lsp-sandbox:latest"


def declared_container(source: Path) -> str:
    """What the project declares as its container ('' when nothing)."""
    for path in (source / ".devcontainer" / "devcontainer.json", source / ".devcontainer.json"):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        text = re.sub(r"^\s*//.*$", "", text, flags=re.M)  # JSONC line comments
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            if data.get("image"):
                return f"devcontainer image {data['image']}"
            build = data.get("build")
            build = build if isinstance(build, dict) else {}
            if data.get("dockerFile") or build.get("dockerfile"):
                return "devcontainer Dockerfile"
    return ""


def choose(kind: str, source: Path, image: str | None) -> tuple[str, str]:
    """(backend, why) for `kind`; only `auto` is decided here."""
    if kind != "auto":
        return kind, f"--sandbox {kind}"
    from k2lsp.sandbox import bwrap as sandbox_bwrap
    from k2lsp.sandbox import docker as sandbox_docker

    wants_docker = declared_container(source) or (
        f"configured image {image}" if image and image != DEFAULT_IMAGE else ""
    )
    bwrap_problem = sandbox_bwrap.problem()
    if wants_docker:
        docker_problem = sandbox_docker.problem(image or DEFAULT_IMAGE)
        if docker_problem is None:
            return "docker", f"docker ({wants_docker})"
        sandbox_docker.problem.cache_clear()
        if bwrap_problem is None:
            return "bwrap", f"bwrap (project wants docker: {wants_docker}, but {docker_problem})"
    if bwrap_problem is None:
        return "bwrap", "bwrap with the host toolchain"
    return "auto", f"bwrap unavailable ({bwrap_problem})"


def open_sandbox(settings: Any, root: Path, source: Path | None = None) -> tuple[Any, str]:
    """The sandbox for a run in `root` (a copy of `source`), with the project's environment
    bound in; returns (sandbox, preflight text). Raises SandboxUnavailable."""
    from k2lsp.sandbox.base import get_sandbox
    from k2lsp.sandbox.profile import settings_for

    sb = settings_for(settings)
    source = (source or root).resolve()
    sb.ro_binds = [*sb.ro_binds, *project_binds(source, root)]
    sb.project_source = str(source)
    kind, why = choose(sb.kind, source, getattr(settings, "sandbox_image", None))
    sandbox = get_sandbox(kind, root, sb)
    if sb.kind == "auto" and sandbox.name == "bwrap":
        sandbox, why = _docker_if_bwrap_cannot(sandbox, sb, why)
    return sandbox, preflight(sandbox, why)


def _docker_if_bwrap_cannot(sandbox: Any, sb: Any, why: str) -> tuple[Any, str]:
    """`auto`: when the host toolchain lacks the test command's program (no pytest for the
    python on PATH, no node, …) and the docker image has it, use docker."""
    from k2lsp.sandbox import docker as sandbox_docker
    from k2lsp.sandbox.base import get_sandbox
    from k2lsp.testrun.detect import detect

    binds = list(sb.ro_binds)
    try:
        command = detect(sandbox.root, binds).command
    except K2lspError:
        return sandbox, why
    missing = missing_program(sandbox, command, binds)
    if not missing or sandbox_docker.problem(sb.image) is not None:
        return sandbox, why
    other = get_sandbox("docker", sandbox.root, sb)
    if missing_program(other, command, binds):
        other.close()
        return sandbox, why
    sandbox.close()
    return other, f"docker (the host toolchain cannot run the tests: {missing.split(',')[0]})"


def preflight(sandbox: Any, why: str) -> str:
    """One paragraph: backend and why, project environment, detected test command or problem."""
    from k2lsp.testrun.detect import detect

    binds = list(getattr(sandbox.settings, "ro_binds", []) or [])
    envs = ", ".join(f"{h} (read-only)" for h, _t in binds) or "none outside the run copy"
    lines = [f"sandbox: {sandbox.name} — {why}", f"project environment: {envs}"]
    try:
        found = detect(sandbox.root, binds)
        lines.append(f"tests: `{found.command}` ({found.reason})")
        missing = missing_program(sandbox, found.command, binds)
        if missing:
            lines.append(f"warning: {missing}")
    except K2lspError as exc:
        lines.append(f"tests: {exc}")
    if sandbox.name == "docker" and any(Path(t).name != "node_modules" for _h, t in binds):
        lines.append(
            "warning: the project's virtualenv links to the host's interpreter, which the docker "
            "image does not have; use --sandbox bwrap or an image with that Python"
        )
    return "\n".join(lines)


def missing_program(sandbox: Any, command: str, binds: list[tuple[str, str]]) -> str:
    """'' when the test command's program (its interpreter, its runner module, node for
    node_modules scripts) is there inside the sandbox; else what is missing and how to fix it."""
    import shlex

    from k2lsp.testrun.env import test_env

    try:
        words = shlex.split(command.split("&&")[0])
    except ValueError:
        return ""
    if not words:
        return ""
    prog = words[0]
    if len(words) > 2 and words[1] == "-m":
        what, probe = f"`{prog} -m {words[2]}`", f"{shlex.quote(prog)} -c 'import {words[2]}'"
    elif prog in ("npm", "npx", "yarn", "pnpm", "node", "go", "cargo", "make"):
        what, probe = f"`{prog}`", f"command -v {shlex.quote(prog)}"
    else:  # a node_modules/.bin script needs node too
        what, q = f"`{prog}` (or node, which runs it)", shlex.quote(prog)
        probe = (
            f"p=$(command -v {q}) || exit 1; "
            'if head -c 64 "$p" | grep -q node; then command -v node; fi'
        )
    env = test_env(sandbox.root, binds)
    path = env.pop("PATH", "")
    line = f'PATH="{path}:$PATH"; export PATH; {probe}' if path else probe
    try:
        res = sandbox.run(f"( {line} ) >/dev/null 2>&1", timeout_s=60, env=env)
    except K2lspError as exc:
        return f"could not check the test command in the sandbox: {exc}"
    if res.exit_code == 0:
        return ""
    fix = (
        "use --sandbox bwrap (the host toolchain) or add it to the image (sandbox/Dockerfile, "
        "then `k2lsp sandbox build`)"
        if sandbox.name == "docker"
        else "install it on this machine, or in the project's .venv / node_modules"
    )
    return f"{what} is not available in the {sandbox.name} sandbox, so the tests cannot run: {fix}"
