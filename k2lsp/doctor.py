"""`k2lsp doctor`: check each sandbox backend, the image, and whether the repository's test
command runs inside the sandbox; print what to do about each failure."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k2lsp.errors import K2lspError

OK, FAIL, WARN = "ok", "FAIL", "warn"


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: str  # ok | FAIL | warn
    detail: str
    fix: str = ""

    def render(self) -> str:
        """`[ok] name: detail` plus an indented `fix:` line."""
        line = f"[{self.status}] {self.name}: {self.detail}"
        return line + (f"\n       fix: {self.fix}" if self.fix and self.status != OK else "")


def check_trust(repo: Path, ignored: list[str]) -> Check:
    """Whether the repository's own k2lsp configuration applies in full."""
    if not ignored:
        return Check("workspace trust", OK, f"{repo}: every k2lsp configuration key applies")
    return Check(
        "workspace trust",
        WARN,
        f"{repo} is not trusted: its keys {', '.join(ignored)} are ignored",
        f"review its k2lsp.toml / [tool.k2lsp], then run `k2lsp trust {repo}`",
    )


def check_docker(image: str) -> list[Check]:
    """Daemon, image, and what is inside the image."""
    from k2lsp import sandbox_docker

    sandbox_docker.problem.cache_clear()
    why = sandbox_docker.problem(image)
    if why is None:
        return [
            Check("docker", OK, f"daemon answers; image {image} present"),
            _image_contents(image),
        ]
    fix = (
        "run `k2lsp sandbox build`"
        if "missing" in why
        else "install docker.io, start dockerd and add your user to the 'docker' group"
    )
    return [Check("docker", FAIL, why, fix)]


def _image_contents(image: str) -> Check:
    from k2lsp.sandbox import SandboxSettings
    from k2lsp.sandbox_docker import DockerSandbox

    probe = (
        "id -u; python3 -c 'import pytest, sys; print(sys.version.split()[0], pytest.__version__)';"
        " git --version"
    )
    import tempfile

    with (
        tempfile.TemporaryDirectory() as empty,
        DockerSandbox(Path(empty), SandboxSettings(image=image)) as sb,
    ):
        try:
            res = sb.run(probe, timeout_s=60)
        except Exception as exc:  # daemon errors while starting the container
            return Check(
                "docker image",
                FAIL,
                f"cannot start a container: {str(exc)[:200]}",
                "run `k2lsp sandbox build --force`",
            )
    lines = res.output.strip().splitlines()
    if res.exit_code != 0 or len(lines) < 3:
        return Check(
            "docker image",
            FAIL,
            f"python3/pytest/git missing in {image}: {res.output[-300:]}",
            "rebuild it: `k2lsp sandbox build --force`, or point sandbox_image at an image "
            "with python3, pytest and git",
        )
    user = "non-root" if lines[0] != "0" else "ROOT"
    return Check(
        "docker image",
        OK if lines[0] != "0" else WARN,
        f"user {user} (uid {lines[0]}), python {lines[1]}, {lines[2]}",
    )


def check_bwrap() -> Check:
    """Whether bubblewrap can create its namespaces."""
    from k2lsp import sandbox_bwrap

    sandbox_bwrap.problem.cache_clear()
    why = sandbox_bwrap.problem()
    if why is None:
        import tempfile

        from k2lsp.sandbox_bwrap import BwrapSandbox

        with tempfile.TemporaryDirectory() as empty, BwrapSandbox(Path(empty)) as sb:
            return Check("bwrap", OK, sb.describe())
    return Check(
        "bwrap", FAIL, why, "apt-get install bubblewrap; allow unprivileged user namespaces"
    )


def check_auto(repo: Path, image: str) -> tuple[Check, str | None]:
    """Which backend `--sandbox auto` picks (or why none)."""
    from k2lsp.sandbox import SandboxSettings, get_sandbox

    try:
        with get_sandbox("auto", repo, SandboxSettings(image=image)) as sb:
            return Check("sandbox auto", OK, f"would use {sb.name}"), sb.name
    except K2lspError as exc:
        return Check(
            "sandbox auto", FAIL, str(exc).splitlines()[0], "enable docker or bwrap (see above)"
        ), None


def check_model(settings: Any) -> Check:
    """The configured host and model: reachable, and its context window with its source."""
    import asyncio

    from k2lsp.model.client import K2Client

    try:
        client = K2Client(settings)
    except K2lspError as exc:
        return Check("model", WARN, f"not checked: {exc}", "set provider, model and key")

    async def probe() -> tuple[list[str], int, str]:
        try:
            ids = [m.id for m in await client.list_models()]
            window, source = await client.detect_context()
            return ids, window, source
        finally:
            await client.aclose()

    try:
        ids, window, source = asyncio.run(probe())
    except K2lspError as exc:
        return Check("model", FAIL, str(exc).splitlines()[0], "check base_url and the key")
    name = f"{settings.model} on {settings.provider} ({settings.base_url})"
    if ids and settings.model not in ids:
        return Check(
            "model", FAIL, f"{name}: not offered; the host has {', '.join(ids[:8])}", "set model"
        )
    detail = f"{name}: context window {window:,} tokens, from {source}"
    if source.startswith("built-in"):  # a self-hosted server rarely runs the full window
        return Check("model", WARN, detail, "set `context_length` to the window the host serves")
    return Check("model", OK, detail)


def check_tests(repo: Path, kind: str, image: str, command: str | None) -> Check:
    """Whether the repository's test command starts inside the sandbox (pytest: collection)."""
    from k2lsp.sandbox import SandboxSettings, get_sandbox
    from k2lsp.testrun.detect import detect_command, runner_name

    try:
        base = command or detect_command(repo)
    except K2lspError as exc:
        return Check("tests", WARN, str(exc).splitlines()[0], "set test_command in k2lsp.toml")
    name = runner_name(base, repo)
    probe = (
        f"{base} --collect-only -q -p no:cacheprovider"
        if name == "pytest"
        else f"command -v {shlex.split(base)[0]}"
    )
    # read-only: the doctor never changes the user's tree (not even permission bits)
    with get_sandbox(kind, repo, SandboxSettings(image=image, read_only_root=True)) as sb:
        res = sb.run(probe, timeout_s=300, env={"PYTHONDONTWRITEBYTECODE": "1"})
    if res.exit_code == 0:
        return Check(f"tests ({kind})", OK, f"`{base}` starts in the sandbox")
    tail = res.output.strip()[-400:]
    hint = _missing_dependency(res.output)
    fix = (
        f"{hint} is not importable in the {kind} sandbox: install it in the image "
        "(edit sandbox/Dockerfile, then `k2lsp sandbox build`) or, with bwrap, in a .venv in the "
        "repository"
        if hint
        else f"make `{base}` work inside the sandbox, or set test_command in k2lsp.toml"
    )
    if "Permission denied" in res.output and repo.stat().st_uid == 0:
        fix = (
            "the unprivileged sandbox user cannot read some files of this root-owned "
            "repository (runs use a private copy it owns; this check reads your tree as is); "
            "make them readable (chmod -R o+rX) or run k2lsp as the repository's owner"
        )
    if name == "pytest" and res.exit_code == 5:
        return Check(
            f"tests ({kind})", WARN, f"`{base}` collected no tests", "check the test paths"
        )
    return Check(f"tests ({kind})", FAIL, f"`{probe}` exited {res.exit_code}: {tail}", fix)


def _missing_dependency(output: str) -> str:
    import re

    m = re.search(r"No module named '([\w.]+)'|(\S+): (?:command )?not found", output)
    if not m:
        return ""
    return f"module {m[1]!r}" if m[1] else f"program {m[2]!r}"


def cli(argv: list[str]) -> int:
    """Entry of `k2lsp doctor`; exit 0 when every check passed, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="k2lsp doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".", help="repository whose tests to try (default: .)")
    parser.add_argument("--image", default=None, help="docker image (default: from settings)")
    parser.add_argument("--test-command", default=None, help="test command to try")
    parser.add_argument("--skip-tests", action="store_true", help="do not try the test command")
    args = parser.parse_args(argv)
    repo = Path(args.repo).expanduser().resolve()
    if not repo.is_dir():
        print(f"k2lsp doctor: {repo} is not a folder; pass --repo DIR")
        return 2
    from k2lsp.config import load_settings

    settings = load_settings(repo, notify=lambda _: None)
    image = args.image or settings.sandbox_image
    checks = [
        check_trust(repo, settings.untrusted),
        check_model(settings),
        *check_docker(image),
        check_bwrap(),
    ]
    auto, kind = check_auto(repo, image)
    checks.append(auto)
    if kind and not args.skip_tests:
        checks.append(check_tests(repo, kind, image, args.test_command or settings.test_command))
    for check in checks:
        print(check.render())
    failed = [c for c in checks if c.status == FAIL]
    usable = auto.status == OK
    print(
        f"\n{len(checks) - len(failed)}/{len(checks)} checks passed"
        + ("" if usable else "; NO sandbox is usable: runs that need tests will stop (exit 6)")
    )
    return 0 if not failed else 1
