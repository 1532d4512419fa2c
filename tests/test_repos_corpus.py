"""run_tests on real packages (bench/corpus.py): every "What was seen" shape of issue 11.

Each test makes the folder a user has (a git repository of a pinned PyPI sdist or npm tarball
with its gitignored `.venv`/`node_modules`), a real run copy of it as a run does, opens the
sandbox the run would open and compares k2lsp's counts with the project's own runner run
directly in its own environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.corpus import BY_NAME, PACKAGES, Package, available, user_project
from bench.corpus_agreement import agree, direct_counts
from k2lsp.runs.runcopy import RunCopy
from k2lsp.sandbox import bwrap as sandbox_bwrap
from k2lsp.sandbox import docker as sandbox_docker
from k2lsp.sandbox.base import SandboxSettings, get_sandbox
from k2lsp.testrun.detect import detect
from k2lsp.testrun.diagnose import diagnose
from k2lsp.testrun.env import foreign_paths
from k2lsp.testrun.runner import run_tests
from k2lsp.testrun.sandbox_select import choose, open_sandbox
from k2lsp.tools.testing import plain_test_command

pytestmark = pytest.mark.skipif(
    sandbox_bwrap.problem() is not None, reason=f"bwrap unavailable: {sandbox_bwrap.problem()}"
)
SLOW = {"mccabe"}  # hypothesis suites: in the bench, not here


def need(name: str) -> Package:
    """The corpus package, or skip when `bench/corpus.py` has not been run here."""
    pkg = BY_NAME[name]
    if not available(pkg):
        pytest.skip(f"corpus package {pkg.key} missing: run `python bench/corpus.py`")
    return pkg


@pytest.fixture
def run_copy(tmp_path: Path) -> Iterator[object]:
    """Factory: `run_copy(folder, state=None)` -> RunCopy (cleaned up afterwards)."""
    made: list[RunCopy] = []

    def make(folder: Path, state: Path | None = None) -> RunCopy:
        rc = RunCopy.create(
            source=folder, run_id=f"t-{uuid.uuid4().hex[:8]}", state_dir=state or tmp_path / "st"
        )
        made.append(rc)
        return rc

    yield make
    for rc in made:
        rc.cleanup()


def k2lsp_report(rc: RunCopy, kind: str = "auto", command: str | None = None):  # type: ignore[no-untyped-def]
    """run_tests in the sandbox a run opens for `rc` (project environment bound in)."""
    sandbox, preflight = open_sandbox(SimpleNamespace(sandbox=kind), rc.root, rc.source)
    try:
        return run_tests(sandbox, command=command, timeout_s=600), preflight, sandbox.name
    finally:
        sandbox.close()


def assert_agrees(pkg: Package, folder: Path, report) -> None:  # type: ignore[no-untyped-def]
    """Same counts as the project's own runner; as root, a test that only fails outside the
    sandbox (root ignores file modes) may differ, but the same tests must have been collected."""
    direct, _ = direct_counts(pkg, folder)
    assert direct.total > 0, direct.output_tail[-2000:]
    if agree(direct, report):
        return
    collected = report.total + report.skipped
    assert os.getuid() == 0 and direct.failed + direct.errors > report.failed + report.errors, (
        f"{pkg.key}: direct {direct.passed}/{direct.failed}/{direct.skipped} vs k2lsp "
        f"{report.passed}/{report.failed}/{report.skipped}: {report.headline()}"
    )
    assert collected == direct.total + direct.skipped


# ---- every corpus package, default sandbox, agreement with the project's own runner ----------


@pytest.mark.parametrize("name", [p.name for p in PACKAGES if p.name not in SLOW])
def test_run_tests_agrees_with_the_projects_own_runner(name: str, tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need(name)
    folder = user_project(pkg, tmp_path / pkg.key)
    report, preflight, backend = k2lsp_report(run_copy(folder))
    assert backend == "bwrap" and "tests: `" in preflight and "warning" not in preflight
    assert report.total > 0, report.headline() + "\n" + report.output_tail
    assert_agrees(pkg, folder, report)


# ---- root, run copy under /root/.local/state, default sandbox -------------------------------


@pytest.mark.skipif(os.getuid() != 0, reason="the root case needs root")
def test_as_root_the_run_copy_under_root_home_is_readable_by_the_tests(
    tmp_path: Path, run_copy
) -> None:  # type: ignore[no-untyped-def]
    pkg = need("appdirs")  # unittest: "Start directory is not importable" when unreadable
    folder = user_project(pkg, tmp_path / pkg.key)
    state = Path.home() / ".local" / "state" / f"k2lsp-test-{uuid.uuid4().hex[:8]}"
    try:
        rc = run_copy(folder, state)
        assert str(rc.root).startswith("/root/")
        report, _pre, _b = k2lsp_report(rc)
        assert report.ok and "PermissionError" not in report.output_tail
        assert_agrees(pkg, folder, report)
    finally:
        shutil.rmtree(state, ignore_errors=True)


# ---- detection on real shapes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("inflection", "-m pytest"),  # plain `def test_…` files, no word "pytest" anywhere
        ("webencodings", "python_files="),  # plain functions in a file named tests.py
        ("jsonpointer", "-m unittest discover"),  # a root tests.py
        ("xmltodict", "-s tests -t tests"),  # tests/ without __init__.py
        ("cachetools", "-m pytest"),  # tox.ini [testenv] commands
        ("more-itertools", "-m unittest"),  # tox.ini `{envpython} -m unittest`
        ("decorator", "-s src/tests -t src"),  # unittest under src/
    ],
)
def test_detection_on_real_shapes(name: str, expected: str, tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need(name)
    rc = run_copy(user_project(pkg, tmp_path / pkg.key))
    sandbox, _pre = open_sandbox(SimpleNamespace(sandbox="bwrap"), rc.root, rc.source)
    sandbox.close()
    found = detect(rc.root, sandbox.settings.ro_binds)
    assert expected in found.command and found.command.startswith(".venv/bin/python")
    assert "--cov" not in found.command  # the env has no pytest-cov


def test_hatch_scripts_and_declared_deps_are_read(tmp_path: Path) -> None:
    pkg = need("inflection")
    folder = user_project(pkg, tmp_path / "p", git=False)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\ntest = ["pytest"]\n'
        '[tool.hatch.envs.default.scripts]\ntest = "pytest -x {args}"\n'
    )
    assert detect(folder).command.endswith("-m pytest -q -x")


# ---- src/ layouts: the run copy's code, never an installed copy -----------------------------


def test_src_layout_tests_the_run_copy_not_the_installed_copy(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("iniconfig")  # its env has iniconfig 1.1.1 installed in site-packages
    folder = user_project(pkg, tmp_path / pkg.key)
    rc = run_copy(folder)
    init = rc.root / "src" / "iniconfig" / "__init__.py"
    text = init.read_text()
    assert "raise ParseError(self.path, lineno, msg)" in text
    init.write_text(text.replace("raise ParseError(self.path, lineno, msg)", "pass", 1))
    report, _pre, _b = k2lsp_report(rc)
    assert report.failed > 0, report.headline()  # the seeded bug is seen: the copy was imported
    assert all(f.path.startswith(("testing/", "src/")) for f in report.failures if f.path)
    assert not report.notes


def test_an_installed_copy_in_a_traceback_is_named(tmp_path: Path) -> None:
    pkg = need("iniconfig")
    folder = user_project(pkg, tmp_path / pkg.key, git=False)
    out = subprocess.run(
        [str(folder / ".venv/bin/python"), "-c", "import iniconfig; iniconfig.IniConfig('x', '[')"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    found = foreign_paths(out.stderr, folder, None)
    assert found and "site-packages/iniconfig" in found[0]


def test_a_venv_keeps_auto_on_bwrap_and_docker_is_warned(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("six")
    folder = user_project(pkg, tmp_path / pkg.key)
    assert choose("auto", folder, None)[0] == "bwrap"
    if sandbox_docker.problem("k2lsp-sandbox:latest") is not None:
        pytest.skip("docker unavailable")
    (folder / ".devcontainer").mkdir()
    (folder / ".devcontainer" / "devcontainer.json").write_text(
        '// comment\n{"image": "k2lsp-sandbox:latest"}\n'
    )
    assert choose("auto", folder, None)[0] == "docker"
    rc = run_copy(folder)
    _report, preflight, backend = k2lsp_report(rc, "docker")
    assert backend == "docker" and "virtualenv links to the host" in preflight


# ---- addopts naming a plugin the environment lacks ------------------------------------------


def test_addopts_with_a_missing_plugin_is_named_and_can_be_overridden(
    tmp_path: Path, run_copy
) -> None:  # type: ignore[no-untyped-def]
    pkg = need("semver")  # addopts: --no-cov-on-fail; the env has no pytest-cov
    rc = run_copy(user_project(pkg, tmp_path / pkg.key))
    raw, _pre, _b = k2lsp_report(rc, command=".venv/bin/python -m pytest -q")
    assert raw.no_tests and "unrecognized arguments" in raw.diagnosis
    assert "pytest-cov" in raw.diagnosis and "-o addopts=" in raw.diagnosis
    override = ".venv/bin/python -m pytest -q -o addopts="
    assert plain_test_command(override)  # the model may pass it without approval
    fixed, _pre, _b = k2lsp_report(rc, command=override)
    assert fixed.ok and fixed.total > 300
    detected, _pre, _b = k2lsp_report(rc)  # detection drops the cov flags itself
    assert detected.ok and "pytest-cov" not in detected.diagnosis


# ---- results without counts say what happened -----------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("npm-not-installed-here test", "command not found: npm-not-installed-here"),
        (
            "touch /tmp/l && chmod 000 /tmp/l && python3 -c \"open('/tmp/l')\"",
            "permission error: PermissionError",
        ),
        ("sh -c 'kill -9 $$'", "SIGKILL"),
        ("true", "passed, counts unknown"),
    ],
)
def test_a_run_without_counts_says_what_happened(
    command: str, expected: str, tmp_path: Path, run_copy
) -> None:  # type: ignore[no-untyped-def]
    pkg = need("appdirs")
    rc = run_copy(user_project(pkg, tmp_path / pkg.key))
    report, _pre, _b = k2lsp_report(rc, command=command)
    assert report.no_tests and expected in report.headline()
    assert "discovery" not in report.headline()


def test_usage_error_names_the_missing_plugin(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("cachetools")
    rc = run_copy(user_project(pkg, tmp_path / pkg.key))
    report, _pre, _b = k2lsp_report(rc, command=".venv/bin/python -m pytest --cov=cachetools")
    assert report.exit_code == 4 and "(missing plugin pytest-cov)" in report.headline()


def test_out_of_memory_is_named() -> None:
    assert diagnose(137, "", ["memory"]).startswith("killed: out of memory")


def test_node_test_run_is_counted(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    folder = tmp_path / "nt"
    (folder / "test").mkdir(parents=True)
    (folder / "package.json").write_text('{"name": "nt", "version": "1.0.0"}')
    body = "".join(f"test('t{i}', () => assert.equal({i} + 1, {i + 1}));\n" for i in range(64))
    (folder / "test" / "a.test.js").write_text(
        "const test = require('node:test');\nconst assert = require('node:assert');\n" + body
    )
    with get_sandbox("bwrap", folder, SandboxSettings()) as sandbox:
        detected = run_tests(sandbox, timeout_s=300)
        explicit = run_tests(sandbox, command="node --test", timeout_s=300)
    assert (detected.passed, detected.failed, detected.ok) == (64, 0, True)
    assert (explicit.passed, explicit.ok) == (64, True)
    assert plain_test_command("node --test") and plain_test_command("node --test test/")


# ---- npm projects ---------------------------------------------------------------------------


def test_npm_project_runs_its_tests_without_hooks_on_the_host_toolchain(
    tmp_path: Path, run_copy
) -> None:  # type: ignore[no-untyped-def]
    pkg = need("minimist")  # pretest: eslint (not installed); posttest: `aud` (needs network)
    folder = user_project(pkg, tmp_path / pkg.key)
    assert choose("auto", folder, None)[0] == "bwrap"
    report, _pre, backend = k2lsp_report(run_copy(folder))
    assert backend == "bwrap" and report.ok and "eslint" not in report.command
    assert_agrees(pkg, folder, report)


def test_npm_project_in_an_image_without_node_names_node(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    if sandbox_docker.problem("k2lsp-sandbox:latest") is not None:
        pytest.skip("docker unavailable")
    pkg = need("fastq")
    tmp_path.chmod(0o755)
    rc = run_copy(user_project(pkg, tmp_path / pkg.key), tmp_path / "state")
    report, preflight, backend = k2lsp_report(rc, "docker")
    assert backend == "docker" and report.no_tests
    assert report.diagnosis.startswith("command not found: node"), report.output_tail
    assert "`tape` (or node, which runs it) is not available in the docker sandbox" in preflight
    assert "--sandbox bwrap" in preflight  # said before the run starts, with the fix


def test_a_link_posing_as_an_environment_is_not_mounted(tmp_path: Path) -> None:
    from k2lsp.testrun.env import project_binds

    secret = Path.home() / f".k2lsp-test-secret-{uuid.uuid4().hex[:6]}"
    secret.mkdir()
    try:
        (secret / "id_rsa").write_text("private")
        user = tmp_path / "user"
        user.mkdir()
        (user / "node_modules").symlink_to(secret)  # a hostile checkout's "environment"
        (user / ".venv").symlink_to(secret)
        copy = tmp_path / "copy"
        copy.mkdir()
        (copy / "node_modules").symlink_to("/etc")  # and one the run copy itself carries
        assert project_binds(user, copy) == []
    finally:
        shutil.rmtree(secret)


def test_a_runner_that_collects_nothing_falls_back_and_says_so(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("colorama")  # TestCase classes in *_test.py: unittest's default pattern misses them
    rc = run_copy(user_project(pkg, tmp_path / pkg.key))
    report, _pre, _b = k2lsp_report(rc)
    assert report.ok and report.runner == "pytest"
    assert report.notes and "collected 0 tests" in report.notes[0]
    assert report.notes[0].endswith("ran pytest instead")


@pytest.mark.parametrize(
    ("name", "rel", "good", "bad", "runner"),
    [
        (
            "minimist",
            "index.js",
            "if ((/^0x[0-9a-f]+$/i).test(x)) { return true; }",
            "if ((/^0x[0-9a-f]+$/i).test(x)) { return false; }",
            "tap",
        ),
        (
            "json-schema-traverse",
            "index.js",
            "post(schema, jsonPtr,",
            "post(schema, jsonPtr + '/x',",
            "mocha",
        ),
    ],
)
def test_javascript_failures_carry_the_test_file_and_line(
    name: str, rel: str, good: str, bad: str, runner: str, tmp_path: Path, run_copy
) -> None:  # type: ignore[no-untyped-def]
    pkg = need(name)
    rc = run_copy(user_project(pkg, tmp_path / pkg.key))
    source = (rc.root / rel).read_text()
    assert source.count(good) == 1
    (rc.root / rel).write_text(source.replace(good, bad))
    report, _pre, _b = k2lsp_report(rc)
    assert report.runner == runner and report.failed > 0 and report.passed > 0
    located = [f for f in report.failures if f.path and f.line]
    assert located, report.failures
    assert all(f.path.startswith(("test/", "spec/", "index.js")) for f in located)


def test_nox_sessions_are_read(tmp_path: Path) -> None:
    pkg = need("jsonpointer")  # unittest-style tests; the noxfile says pytest with -x
    folder = user_project(pkg, tmp_path / "p", git=False)
    (folder / "noxfile.py").write_text(
        "import nox\n\n@nox.session\ndef tests(session):\n"
        '    session.install("pytest")\n    session.run("pytest", "-x", *session.posargs)\n'
    )
    assert detect(folder).command.endswith("-m pytest -q -x")


def test_a_package_inside_a_monorepo_uses_the_repos_environment(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("inflection")
    top = tmp_path / "mono"
    (top / "packages").mkdir(parents=True)
    folder = user_project(pkg, top / "packages" / "inflection", git=False)
    (folder / ".venv").rename(top / ".venv")  # one environment at the top of the monorepo
    (top / ".gitignore").write_text(".venv\n__pycache__/\n")
    (top / "README.md").write_text("monorepo\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@e.com"}
    env.update(GIT_COMMITTER_NAME="u", GIT_COMMITTER_EMAIL="u@e.com")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "mono"]):
        subprocess.run(["git", *args], cwd=top, check=True, env=env)
    report, preflight, _b = k2lsp_report(run_copy(folder))
    assert report.command.startswith("../../.venv/bin/python -m pytest")
    assert "/.venv (read-only)" in preflight
    assert_agrees(pkg, _with_venv(pkg, tmp_path / "direct"), report)


def test_a_folder_that_is_not_a_git_repository(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("isodate")  # src/ layout, unittest, dependency six from the .venv
    folder = user_project(pkg, tmp_path / pkg.key, git=False)
    rc = run_copy(folder)
    assert not rc.is_git
    report, _pre, _b = k2lsp_report(rc)
    assert report.ok
    assert_agrees(pkg, folder, report)


def _with_venv(pkg: Package, where: Path) -> Path:
    return user_project(pkg, where, git=False)


def test_other_missing_plugins_in_addopts_are_dropped_and_named(tmp_path: Path, run_copy) -> None:  # type: ignore[no-untyped-def]
    pkg = need("inflection")  # its env has pytest only: no xdist, no pytest-timeout
    folder = user_project(pkg, tmp_path / pkg.key, git=False)
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -n auto --timeout 30 -ra\n")
    rc = run_copy(folder)
    detected, _pre, _b = k2lsp_report(rc)
    assert detected.ok and "addopts=-ra" in detected.command
    raw, _pre, _b = k2lsp_report(rc, command=".venv/bin/python -m pytest -q")
    assert "missing plugin pytest-timeout, pytest-xdist" in raw.diagnosis or (
        "missing plugin pytest-xdist" in raw.diagnosis
    )
