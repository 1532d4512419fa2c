"""One settings model for every layer: a bad value reads the same from a k2lsp.toml, a K2LSP_*
variable, the editor (a real `k2lsp --stdio` over pytest-lsp) and a CLI flag (the real
command as a subprocess); bounds, types, camelCase, unknown keys, trust, and the docs table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from k2lsp.config import load_settings
from k2lsp.errors import UsageError
from k2lsp.server.config import parse_config
from k2lsp.settings_doc import reference_table
from k2lsp.settings_model import SETTABLE, Settings
from tests.lsp_fixtures import make_project, start_editor, stop_editor

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]

# key, value in TOML (also the text of the env var / flag), editor JSON value, flag, the words
# every layer must print after "<where>: ".
CASES: list[tuple[str, str, Any, str | None, str]] = [
    ("max_steps", "-5", -5, "--max-steps", "max_steps: must be >= 1 (got -5)"),
    ("max_tokens", "2.5", 2.5, "--max-tokens", "max_tokens: must be a whole number (got 2.5)"),
    ("budget_usd", "0", 0, "--budget-usd", "budget_usd: must be > 0 (got 0)"),
    ("timeout_s", "-1.5", -1.5, "--timeout", "timeout_s: must be > 0 (got -1.5)"),
    (
        "sandbox",
        '"vm"',
        "vm",
        "--sandbox",
        "sandbox: must be one of 'auto', 'docker', 'bwrap' or 'none' (got 'vm')",
    ),
    ("temperature", "7", 7, None, "temperature: must be <= 2 (got 7)"),
    ("allow_test_changes", "1", 1, None, "allow_test_changes: must be true or false (got 1)"),
    (
        "base_url",
        '"ftp://host/v1"',
        "ftp://host/v1",
        "--base-url",
        "base_url: must be an http:// or https:// URL (got 'ftp://host/v1')",
    ),
]
WORDS = re.compile(r"((?:[a-z_]+): must [^\n]*?\(got [^\n]*?\))")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def words(text: str) -> set[str]:
    """The '<key>: <problem> (got <value>)' part of every problem line in `text`."""
    return set(WORDS.findall(text))


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2LSP_") and k != "CI"}
    env.update(
        {
            "HOME": str(tmp / "home"),
            "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
            "XDG_STATE_HOME": str(tmp / "xdg-state"),
            "K2LSP_PROVIDER": "openai-compatible",
            "K2LSP_BASE_URL": "http://127.0.0.1:9/v1",
            "K2LSP_MODEL": "kimi-k2-thinking",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "k2lsp", "--task", "hi", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def cli_layers(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """The real CLI with every bad value from a file, from the environment, from flags."""
    tmp = tmp_path_factory.mktemp("layers")
    repo = tmp / "repo"
    repo.mkdir()
    (repo / "k2lsp.toml").write_text("".join(f"{k} = {v}\n" for k, v, *_ in CASES))
    out = {"file": run_cli(["--repo", str(repo)], base_env(tmp))}
    (repo / "k2lsp.toml").unlink()
    env = base_env(tmp)
    env.update({f"K2LSP_{k.upper()}": v.strip('"') for k, v, *_ in CASES})
    out["env"] = run_cli(["--repo", str(repo)], env)
    flags = [flag + "=" + v.strip('"') for _, v, _, flag, _ in CASES if flag]
    out["flag"] = run_cli(["--repo", str(repo), *flags], base_env(tmp))
    return out


def test_a_file_reports_every_bad_value_with_its_path(
    cli_layers: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    proc = cli_layers["file"]
    assert proc.returncode == 2, proc.stderr
    assert words(proc.stderr) == {w for *_, w in CASES}
    for *_, w in CASES:  # each line names the file it came from
        assert re.search(rf"k2lsp\.toml: {re.escape(w)}", proc.stderr), proc.stderr


def test_env_vars_read_the_same_as_the_file(
    cli_layers: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    proc = cli_layers["env"]
    assert proc.returncode == 2, proc.stderr
    assert words(proc.stderr) == {w for *_, w in CASES}
    for key, *_, w in CASES:
        assert f"K2LSP_{key.upper()}: {w}" in proc.stderr


def test_flags_read_the_same_as_the_file(
    cli_layers: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    proc = cli_layers["flag"]
    assert proc.returncode == 2, proc.stderr
    assert words(proc.stderr) == {w for *_, flag, w in CASES if flag}
    for *_, flag, w in CASES:
        if flag:
            assert f"{flag}: {w}" in proc.stderr


async def test_the_editor_reads_the_same_as_the_file(tmp_path: Path) -> None:
    """initializationOptions with the same bad values, camelCase: the same words, shown with
    window/showMessage, the value dropped; a valid snake_case key next to them applies."""
    options = {camel(k): editor for k, _, editor, *_ in CASES}
    ed = await start_editor(
        make_project(tmp_path / "proj"),
        "http://127.0.0.1:9/v1",
        tmp_path / "home",
        init_options={**options, "max_retries": 7},
    )
    try:
        await ed.wait_for(lambda: len(ed.client.messages) >= len(CASES))
        shown = "\n".join(m.message for m in ed.client.messages)
        assert words(shown) == {w for *_, w in CASES}
        for key, *_, w in CASES:
            assert f"editor setting {camel(key)!r}: {w}; ignored" in shown
        status = await ed.command("k2lsp.status")
        assert status["runs"] == []
    finally:
        await stop_editor(ed)


async def test_the_server_warns_about_unknown_file_keys_once_and_still_runs(tmp_path: Path) -> None:
    from k2lsp.model.fake_server import FakeK2Server, Reply

    fake = FakeK2Server([], models=["kimi-k2-thinking"])
    fake.start()
    root = make_project(tmp_path / "proj")
    (root / "k2lsp.toml").write_text('modle = "x"\nmax_steps = 5\n')
    fake.add(Reply(reasoning="ok", content="Hello."))
    ed = await start_editor(root, fake.base_url, tmp_path / "home")
    try:
        line = f"{root / 'k2lsp.toml'}: unknown setting 'modle' ignored (did you mean 'model'?)"
        await ed.wait_for(lambda: any(line in m.message for m in ed.client.messages))
        run_id = (await ed.command("k2lsp.ask", {"question": "hi?"}))["runId"]
        assert (await ed.finished(run_id))["outcome"] == "success"
        assert sum(line in m.message for m in ed.client.messages) == 1  # once, not per run
    finally:
        await stop_editor(ed)
        fake.stop()


def test_the_same_words_from_every_layer_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_settings (files, env, overrides with flag labels) and parse_config agree."""
    for name in list(os.environ):
        if name.startswith("K2LSP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    for key, toml, editor, _flag, w in CASES:
        repo = tmp_path / key
        repo.mkdir()
        (repo / "k2lsp.toml").write_text(f"{key} = {toml}\n")
        with pytest.raises(UsageError) as from_file:
            load_settings(repo, trusted=True)
        (repo / "k2lsp.toml").unlink()
        monkeypatch.setenv(f"K2LSP_{key.upper()}", toml.strip('"'))
        with pytest.raises(UsageError) as from_env:
            load_settings(repo)
        monkeypatch.delenv(f"K2LSP_{key.upper()}")
        problems = parse_config({"k2lsp": {key: editor}}).problems
        assert str(from_file.value) == f"{repo / 'k2lsp.toml'}: {w}"
        assert str(from_env.value) == f"K2LSP_{key.upper()}: {w}"
        assert problems and problems[0].startswith(f"k2lsp: editor setting {key!r}: {w}; ")


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("K2LSP_") or name.endswith("_API_KEY"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_steps = 1", None),
        ("max_steps = 0", "max_steps: must be >= 1 (got 0)"),
        ("temperature = 0", None),
        ("temperature = 2.0", None),
        ("temperature = -0.1", "temperature: must be >= 0 (got -0.1)"),
        ("max_retries = 0", None),
        ("max_retries = -1", "max_retries: must be >= 0 (got -1)"),
        ("context_length = 0", "context_length: must be >= 1 (got 0)"),
        ("request_timeout_s = 0", "request_timeout_s: must be > 0 (got 0)"),
        ('max_steps = "10"', "max_steps: must be a whole number (got '10')"),
        ("max_steps = true", "max_steps: must be a whole number (got True)"),
        ("model = 5", "model: must be a string (got 5)"),
        ('allow_commands = ["make", 3]', "allow_commands.1: must be a string (got 3)"),
        ("prices = { input = -1 }", "prices.input: must be >= 0 (got -1)"),
        (
            "prices = { outptu = 1 }",
            "prices.outptu: unknown price; use input_cache_hit, input, "
            "output (USD per 1M tokens) (got 'outptu')",
        ),
        ('state_dir = ""', "state_dir: must be a path, not an empty string (got '')"),
        ('provider = "moonshoot"', "provider: unknown provider 'moonshoot'; choose one of: "),
        ("sandbox_limits = { pids = 0 }", "sandbox_limits.pids: must be >= 1 (got 0)"),
        ("sandbox_limits = { ram = 1 }", "sandbox_limits.ram: unknown key (got 1)"),
        ('sandbox_limits = { network = "yes" }', "sandbox_limits.network: must be true or false"),
        ("sandbox_limits = { pids = 64, network = true }", None),
    ],
)
def test_bounds_and_types(clean: Path, text: str, expected: str | None) -> None:
    (clean / "k2lsp.toml").write_text(text + "\n")
    if expected is None:
        load_settings(clean, trusted=True)
        return
    with pytest.raises(UsageError) as info:
        load_settings(clean, trusted=True)
    assert str(info.value).startswith(f"{clean / 'k2lsp.toml'}: {expected}")


def test_env_values_are_typed_like_file_values(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K2LSP_MAX_STEPS", "12")
    monkeypatch.setenv("K2LSP_TEMPERATURE", "0.5")
    monkeypatch.setenv("K2LSP_ALLOW_COMMANDS", '["make *"]')
    monkeypatch.setenv("K2LSP_MODEL", "true")  # a string field keeps the text as it is
    monkeypatch.setenv("K2LSP_STATE_DIR", str(clean / "st"))
    s = load_settings(clean)
    assert (s.max_steps, s.temperature, s.allow_commands) == (12, 0.5, ["make *"])
    assert s.model == "true" and s.state_dir == clean / "st"


def test_camel_and_snake_case_editor_keys_are_the_same_setting() -> None:
    a = parse_config({"k2lsp": {"maxSteps": 5, "allowCommands": ["make"], "budgetUsd": 1}})
    b = parse_config({"k2lsp": {"max_steps": 5, "allow_commands": ["make"], "budget_usd": 1}})
    assert a.problems == b.problems == []
    assert (
        a.overrides
        == b.overrides
        == {
            "max_steps": 5,
            "allow_commands": ["make"],
            "budget_usd": 1.0,
        }
    )


def test_empty_and_null_editor_values_mean_unset() -> None:
    first = parse_config({"k2lsp": {"provider": "openrouter", "maxSteps": 5}})
    later = parse_config({"k2lsp": {"provider": "", "maxSteps": None, "sandbox": ""}}, first)
    assert later.problems == [] and later.overrides == {}


def test_unknown_keys_are_warned_about_in_every_layer(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean / "k2lsp.toml").write_text("max_step = 3\nfoo = 1\n")
    monkeypatch.setenv("K2LSP_MODLE", "x")
    warned: list[str] = []
    s = load_settings(clean, {"sandbx": "none"}, warn=warned.append)
    assert s.max_steps == 300  # nothing applied from unknown keys
    assert sorted(warned) == sorted(
        [
            f"{clean / 'k2lsp.toml'}: unknown setting 'max_step' ignored "
            "(did you mean 'max_steps'?)",
            f"{clean / 'k2lsp.toml'}: unknown setting 'foo' ignored",
            "environment: unknown variable 'K2LSP_MODLE' ignored (did you mean 'K2LSP_MODEL'?)",
            "editor/CLI options: unknown setting 'sandbx' ignored (did you mean 'sandbox'?)",
        ]
    )
    editor = parse_config({"k2lsp": {"maxStep": 3}})
    assert editor.problems == [
        "k2lsp: editor: unknown setting 'maxStep' ignored (did you mean 'max_steps'?)"
    ]


def test_derived_fields_cannot_be_set_from_a_layer(clean: Path) -> None:
    (clean / "k2lsp.toml").write_text('untrusted = []\napi_key_source = "x"\n')
    warned: list[str] = []
    s = load_settings(clean, warn=warned.append)
    assert s.api_key_source == "" and len(warned) == 2


def test_untrusted_file_keys_are_ignored_but_bad_values_still_reported(clean: Path) -> None:
    local = clean / "k2lsp.toml"
    local.write_text('base_url = "http://evil.example/v1"\nmax_steps = 7\n')
    s = load_settings(clean, notify=lambda _: None)  # no `k2lsp trust`: the store says no
    assert s.base_url == "https://api.moonshot.ai/v1" and s.untrusted == ["base_url"]
    assert s.max_steps == 7  # a key that is not sensitive still applies
    local.write_text('base_url = "http://evil.example/v1"\nmax_steps = -5\n')
    with pytest.raises(UsageError) as info:
        load_settings(clean, notify=lambda _: None)
    assert str(info.value) == f"{local}: max_steps: must be >= 1 (got -5)"
    local.write_text('base_url = "ftp://evil"\n')  # a bad sensitive value is reported too
    with pytest.raises(UsageError, match="base_url: must be an http"):
        load_settings(clean, trusted=False, notify=lambda _: None)
    local.write_text('base_url = "http://mine.example/v1"\n')
    assert load_settings(clean, trusted=True).base_url == "http://mine.example/v1"


def test_secrets_are_never_echoed(clean: Path) -> None:
    (clean / "k2lsp.toml").write_text('api_key = ["sk-secret-in-a-list-0123456789abcdef"]\n')
    with pytest.raises(UsageError) as info:
        load_settings(clean, trusted=True)
    assert "sk-secret" not in str(info.value) and "api_key: must be a string (got ***)" in str(
        info.value
    )


def test_every_bad_value_of_all_layers_is_reported_at_once(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean / "k2lsp.toml").write_text("max_steps = 0\n")
    monkeypatch.setenv("K2LSP_TEMPERATURE", "9")
    with pytest.raises(UsageError) as info:
        load_settings(clean, {"budget_usd": -1}, labels={"budget_usd": "--budget-usd"})
    assert str(info.value).splitlines() == [
        "invalid settings:",
        f"  {clean / 'k2lsp.toml'}: max_steps: must be >= 1 (got 0)",
        "  K2LSP_TEMPERATURE: temperature: must be <= 2 (got 9)",
        "  --budget-usd: budget_usd: must be > 0 (got -1)",
    ]


def test_docs_reference_is_the_model() -> None:
    """docs/configuration.md carries the table generated from Settings, and every row is a
    field (and every settable field a row)."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert reference_table() in text, "regenerate: python -m k2lsp.settings_doc"
    rows = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M)
    assert sorted(rows) == sorted(SETTABLE)
    assert set(SETTABLE) | {"api_key_env", "api_key_source", "untrusted"} == set(
        Settings.model_fields
    )


def test_sandbox_limit_keys_are_sandbox_settings() -> None:
    from dataclasses import fields

    from k2lsp.sandbox import SandboxSettings
    from k2lsp.settings_model import SandboxLimits

    assert set(SandboxLimits.model_fields) <= {f.name for f in fields(SandboxSettings)}


def test_cli_help_lists_the_model_sandbox_kinds() -> None:
    import typing

    from k2lsp.cli import SANDBOXES
    from k2lsp.settings_model import SandboxKind

    assert SANDBOXES == typing.get_args(SandboxKind)
