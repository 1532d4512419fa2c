"""`k2lsp doctor`: check each sandbox backend, the image, and whether the repository's test
command runs inside the sandbox; print what to do about each failure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from k2lsp.errors import K2lspError
from k2lsp.health.checks import FAIL, OK, WARN, Check, check_key, check_model, setup_checks

__all__ = ["FAIL", "OK", "WARN", "Check", "check_key", "check_model", "cli"]


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


def check_mcp(settings: Any, repo: Path) -> list[Check]:
    """Start each configured MCP server once and list its tools (as a run would)."""
    import asyncio

    from k2lsp.tools.mcp.hub import McpHub

    async def probe(name: str, spec: Any) -> Check:
        hub = McpHub({name: spec}, cwd=repo, cap=settings.mcp.output_cap_chars)
        await hub.start()
        try:
            tools = [t.name for t in hub.tools()]
        finally:
            await hub.close()
        if hub.problems and not tools:
            return Check(f"MCP {name}", FAIL, "; ".join(hub.problems), _MCP_FIX)
        detail = f"{len(tools)} tool(s): {', '.join(tools[:8])}" + ("…" if len(tools) > 8 else "")
        if hub.problems:
            return Check(f"MCP {name}", WARN, f"{detail}; {'; '.join(hub.problems)}", _MCP_FIX)
        return Check(f"MCP {name}", OK, detail)

    return [
        asyncio.run(probe(name, spec))
        for name, spec in settings.mcp.servers.items()
        if spec.enabled
    ]


_MCP_FIX = "check the server's command/url in [mcp.servers] (see docs/acp.md#mcp-servers)"


def check_docker(image: str) -> list[Check]:
    """Daemon, image, and what is inside the image."""
    from k2lsp.sandbox import docker as sandbox_docker

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
    from k2lsp.sandbox.base import SandboxSettings
    from k2lsp.sandbox.docker import DockerSandbox

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
    from k2lsp.sandbox import bwrap as sandbox_bwrap

    sandbox_bwrap.problem.cache_clear()
    why = sandbox_bwrap.problem()
    if why is None:
        import tempfile

        from k2lsp.sandbox.bwrap import BwrapSandbox

        with tempfile.TemporaryDirectory() as empty, BwrapSandbox(Path(empty)) as sb:
            return Check("bwrap", OK, sb.describe())
    return Check(
        "bwrap", FAIL, why, "apt-get install bubblewrap; allow unprivileged user namespaces"
    )


def check_auto(repo: Path, image: str, kind: str = "auto") -> tuple[Check, str | None]:
    """Which backend a run on `repo` would use for `kind` (or why none)."""
    from k2lsp.sandbox.base import SandboxSettings, get_sandbox
    from k2lsp.testrun.sandbox_select import choose

    try:
        chosen, why = choose(kind, repo, image)
        with get_sandbox(chosen, repo, SandboxSettings(image=image)) as sb:
            return Check(f"sandbox {kind}", OK, f"would use {sb.name} ({why})"), sb.name
    except K2lspError as exc:
        return Check(
            f"sandbox {kind}", FAIL, str(exc).splitlines()[0], "enable docker or bwrap (see above)"
        ), None


def check_tests(repo: Path, kind: str, image: str, command: str | None, settings: Any) -> Check:
    """Run the test command as a run would: in a real run copy of `repo` (the user's tree is
    never touched), in the sandbox the run would open; report the count and the first error."""
    import uuid

    from k2lsp.runs.runcopy import RunCopy
    from k2lsp.testrun.runner import run_tests
    from k2lsp.testrun.sandbox_select import open_sandbox

    run_settings = settings.model_copy(update={"sandbox": kind, "sandbox_image": image})
    try:
        copy = RunCopy.create(source=repo, run_id=f"doctor-{uuid.uuid4().hex[:8]}")
    except K2lspError as exc:
        return Check("tests", FAIL, f"cannot make a run copy: {exc}", "see the message")
    try:
        sandbox, _pre = open_sandbox(run_settings, copy.root, repo)
        with sandbox:
            report = run_tests(sandbox, command=command, timeout_s=600)
    except K2lspError as exc:
        return Check("tests", WARN, str(exc).splitlines()[0], "set test_command in k2lsp.toml")
    finally:
        copy.cleanup()
    return _tests_check(report, sandbox.name, str(copy.root))


def _tests_check(report: Any, name: str, where: str) -> Check:
    collected = report.total + report.skipped
    label = f"tests ({name})"
    first = next(
        (f"{f.test_id}: {f.message.splitlines()[0]}" for f in report.failures if f.message), ""
    )
    summary = (
        f"`{report.command}` in a run copy ({where}): {collected} collected, "
        f"{report.passed} passed, {report.failed} failed, {report.errors} errors"
    )
    if report.ok:
        return Check(label, OK, summary)
    if report.passed or report.failed:
        return Check(label, WARN, f"{summary}; first error: {first}", "the tests run; some fail")
    text = report.output_tail + "\n".join(f.message for f in report.failures)
    hint = _missing_dependency(text)
    fix = (
        f"{hint} is not importable in the {name} sandbox: install it in the project's .venv "
        "(bwrap uses it) or in the image (edit sandbox/Dockerfile, then `k2lsp sandbox build`)"
        if hint
        else f"make `{report.command}` work inside the sandbox, or set test_command in k2lsp.toml"
    )
    if "permission error" in report.diagnosis:
        fix = (
            f"the {name} sandbox user cannot read some files of the run copy; run k2lsp as "
            "the repository's owner, make them readable (chmod -R o+rX), or use --sandbox bwrap"
        )
    detail = report.diagnosis or first or report.headline()
    return Check(label, FAIL, f"{summary}: {detail}", fix)


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
    parser.add_argument(
        "--setup",
        action="store_true",
        help="only the quick setup checks (API key, GET /models, sandbox probe), as the editors "
        "run them",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--sandbox",
        default=None,
        choices=["auto", "docker", "bwrap", "none"],
        help="backend to try the tests in (default: K2LSP_SANDBOX or settings, else auto)",
    )
    args = parser.parse_args(argv)
    repo = Path(args.repo).expanduser().resolve()
    if not repo.is_dir():
        print(f"k2lsp doctor: {repo} is not a folder; pass --repo DIR")
        return 2
    from k2lsp.config.settings import load_settings

    settings = load_settings(repo, notify=lambda _: None)
    image = args.image or settings.sandbox_image
    if args.sandbox:
        settings.sandbox = args.sandbox
    if args.setup:
        return _report([check_trust(repo, settings.untrusted), *setup_checks(settings, repo)], args)
    checks = [
        check_trust(repo, settings.untrusted),
        check_model(settings),
        *check_docker(image),
        check_bwrap(),
        *check_mcp(settings, repo),
    ]
    wanted = args.sandbox or settings.sandbox or "auto"
    auto, kind = check_auto(repo, image, wanted)
    checks.append(auto)
    if kind and not args.skip_tests:
        command = args.test_command or settings.test_command
        checks.append(check_tests(repo, wanted, image, command, settings))
    if args.json:
        return _report(checks, args)
    for check in checks:
        print(check.render())
    failed = [c for c in checks if c.status == FAIL]
    usable = auto.status == OK
    print(
        f"\n{len(checks) - len(failed)}/{len(checks)} checks passed"
        + ("" if usable else "; NO sandbox is usable: runs that need tests will stop (exit 6)")
    )
    return 0 if not failed else 1


def _report(checks: list[Check], args: argparse.Namespace) -> int:
    """Print `checks` (JSON with --json, else one block each); exit 1 when one failed."""
    import json

    from k2lsp.health.checks import summary

    if args.json:
        print(json.dumps(summary(checks), indent=2))
    else:
        for check in checks:
            print(check.render())
    return 0 if all(c.status != FAIL for c in checks) else 1
