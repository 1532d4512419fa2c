"""Configuration layers, provider presets, model profiles and every bad-config error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from k2lsp.config import Settings, load_settings
from k2lsp.errors import UsageError
from k2lsp.providers import PROVIDERS, model_profile
from k2lsp.redact import redact

KEY_ENVS = {p.key_env for p in PROVIDERS.values() if p.key_env}
KEY = "sk-config-test-abcdefghijklmnop0123"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """A clean environment: no k2lsp/provider env vars, XDG dirs under tmp_path."""
    import os

    k2lsp_vars = [n for n in os.environ if n.startswith("K2LSP_")]  # CI exports a few of its own
    for name in [*k2lsp_vars, *KEY_ENVS]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    repo = tmp_path / "repo"
    repo.mkdir()
    user = tmp_path / "xdg-config" / "k2lsp" / "config.toml"
    user.parent.mkdir(parents=True)
    return {"repo": repo, "user": user, "tmp": tmp_path}


def test_defaults_use_the_moonshot_preset(env: dict[str, Path]) -> None:
    s = load_settings(env["repo"])
    assert (s.provider, s.base_url, s.model) == (
        "moonshot",
        "https://api.moonshot.ai/v1",
        "kimi-k2.5",
    )
    assert s.temperature is None and s.max_output_tokens >= 16_000  # the client picks it
    assert s.state_dir == env["tmp"] / "xdg-state" / "k2lsp"
    assert s.prices == {"input_cache_hit": 0.15, "input": 0.60, "output": 2.50}


LAYERS = ["user", "pyproject", "local", "env", "override"]


def _write_layers(
    env: dict[str, Path], upto: int, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for layer in LAYERS[: upto + 1]:
        if layer == "user":
            env["user"].write_text('model = "from-user"\n')
        elif layer == "pyproject":
            (env["repo"] / "pyproject.toml").write_text(
                '[project]\nname = "x"\n[tool.k2lsp]\nmodel = "from-pyproject"\n'
            )
        elif layer == "local":
            (env["repo"] / "k2lsp.toml").write_text('model = "from-local"\n')
        elif layer == "env":
            monkeypatch.setenv("K2LSP_MODEL", "from-env")
        else:
            overrides["model"] = "from-override"
    return overrides


@pytest.mark.parametrize("upto", range(len(LAYERS)), ids=LAYERS)
def test_later_layers_win(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, upto: int) -> None:
    overrides = _write_layers(env, upto, monkeypatch)
    expected = {
        "user": "from-user",
        "pyproject": "from-pyproject",
        "local": "from-local",
        "env": "from-env",
        "override": "from-override",
    }[LAYERS[upto]]
    assert load_settings(env["repo"], overrides).model == expected


def test_env_does_not_beat_explicit_overrides_and_none_overrides_are_ignored(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K2LSP_BASE_URL", "http://env.example/v1")
    s = load_settings(env["repo"], {"base_url": "http://cli.example/v1", "model": None})
    assert s.base_url == "http://cli.example/v1" and s.model == "kimi-k2.5"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_provider_preset(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    preset = PROVIDERS[name]
    if preset.key_env:
        monkeypatch.setenv(preset.key_env, KEY)
    if not preset.base_url:
        monkeypatch.setenv("K2LSP_BASE_URL", "http://127.0.0.1:9/v1")
    s = load_settings(env["repo"], {"provider": name}, require_key=True)
    assert s.base_url == (preset.base_url or "http://127.0.0.1:9/v1")
    assert s.model == preset.default_model
    assert s.api_key == (KEY if preset.key_env else "")
    assert s.api_key_env == preset.key_env


def test_k2lsp_api_key_beats_the_provider_variable(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-provider-var-0123456789abcdef")
    monkeypatch.setenv("K2LSP_API_KEY", KEY)
    s = load_settings(env["repo"])
    assert s.api_key == KEY and s.api_key_env == "K2LSP_API_KEY"


def test_the_key_never_shows_in_repr_and_is_redacted(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K2LSP_API_KEY", "plainkey-without-prefix-42")
    s = load_settings(env["repo"])
    assert "plainkey" not in repr(s) and "plainkey" not in str(s)
    assert "api_key=<set>" in repr(s)
    assert "plainkey" not in redact("the key is plainkey-without-prefix-42")


def test_missing_key_names_the_env_var(env: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="MOONSHOT_API_KEY"):
        load_settings(env["repo"], require_key=True)
    with pytest.raises(UsageError, match="OPENROUTER_API_KEY"):
        load_settings(env["repo"], {"provider": "openrouter"}, require_key=True)


@pytest.mark.parametrize("provider", ["vllm", "sglang", "openai-compatible"])
def test_self_hosted_needs_a_base_url_but_no_key(env: dict[str, Path], provider: str) -> None:
    with pytest.raises(UsageError, match="K2LSP_BASE_URL"):
        load_settings(env["repo"], {"provider": provider}, require_key=True)
    s = load_settings(
        env["repo"], {"provider": provider, "base_url": "http://h:8000/v1/"}, require_key=True
    )
    assert s.base_url == "http://h:8000/v1" and s.api_key == ""


def test_unknown_provider_lists_the_providers(env: dict[str, Path]) -> None:
    (env["repo"] / "k2lsp.toml").write_text('provider = "moonshoot"\n')
    with pytest.raises(UsageError) as info:
        load_settings(env["repo"], trusted=True)
    msg = str(info.value)
    assert "moonshoot" in msg and "k2lsp.toml" in msg
    assert all(name in msg for name in PROVIDERS)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('max_steps = "many"', "max_steps"),
        ("max_steps = true", "max_steps"),
        ('temperature = "hot"', "temperature"),
        ('allow_commands = "pytest"', "allow_commands"),
        ("allow_test_changes = 1", "allow_test_changes"),
        ('prices = { output = "cheap" }', "prices"),
        ("prices = { outptu = 1.0 }", "prices"),
        ('thinking = "yes"', "thinking"),
        ("max_output_tokens = 0", "max_output_tokens"),
    ],
)
@pytest.mark.parametrize("where", ["user", "pyproject", "local"])
def test_bad_values_name_the_key_and_the_file(
    env: dict[str, Path], text: str, key: str, where: str
) -> None:
    if where == "user":
        path = env["user"]
        path.write_text(text + "\n")
    elif where == "pyproject":
        path = env["repo"] / "pyproject.toml"
        path.write_text(f"[tool.k2lsp]\n{text}\n")
    else:
        path = env["repo"] / "k2lsp.toml"
        path.write_text(text + "\n")
    with pytest.raises(UsageError) as info:
        load_settings(env["repo"])
    assert key in str(info.value) and str(path) in str(info.value)


def test_bad_override_type_is_a_usage_error(env: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match=r"editor/CLI.*max_steps"):
        load_settings(env["repo"], {"max_steps": "ten"})


def test_unknown_file_key_is_a_warning_that_suggests_the_right_one(env: dict[str, Path]) -> None:
    (env["repo"] / "k2lsp.toml").write_text('modle = "x"\nmax_steps = 9\n')
    warned: list[str] = []
    s = load_settings(env["repo"], warn=warned.append)
    assert s.max_steps == 9 and s.model == "kimi-k2.5"  # the rest of the file applies
    assert warned == [
        f"{env['repo'] / 'k2lsp.toml'}: unknown setting 'modle' ignored (did you mean 'model'?)"
    ]


def test_invalid_toml_names_the_file(env: dict[str, Path]) -> None:
    env["user"].write_text("model = \n")
    with pytest.raises(UsageError, match=r"config\.toml.*not valid TOML"):
        load_settings(env["repo"])


def test_prices_override_merges_with_the_table(env: dict[str, Path]) -> None:
    (env["repo"] / "k2lsp.toml").write_text("[prices]\noutput = 3.0\n")
    s = load_settings(env["repo"])
    assert s.prices == {"input_cache_hit": 0.15, "input": 0.60, "output": 3.0}


def test_file_values_have_the_declared_types(env: dict[str, Path]) -> None:
    (env["repo"] / "k2lsp.toml").write_text(
        'temperature = 1\nstate_dir = "~/k2state"\nallow_commands = ["make"]\nbudget_usd = 2\n'
    )
    s = load_settings(env["repo"], trusted=True)  # state_dir, allow_commands need trust
    assert s.temperature == 1.0 and isinstance(s.temperature, float)
    assert s.state_dir == Path("~/k2state").expanduser()
    assert s.allow_commands == ["make"] and s.budget_usd == 2.0


@pytest.mark.parametrize(
    ("model", "switch", "ctx"),
    [
        ("kimi-k2-thinking", "always", 262_144),
        ("kimi-k2-thinking-turbo", "always", 262_144),
        ("moonshotai/Kimi-K2-Thinking", "always", 262_144),
        ("kimi-k2.5", "extra_body", 262_144),
        ("kimi-k3", "extra_body", 262_144),
        ("kimi-k2-instruct", "none", 131_072),
    ],
)
def test_model_profiles(model: str, switch: str, ctx: int) -> None:
    p = model_profile(model)
    assert (p.thinking_switch, p.context_length) == (switch, ctx)


def test_turbo_has_turbo_prices(env: dict[str, Path]) -> None:
    s = load_settings(env["repo"], {"model": "kimi-k2-thinking-turbo"})
    assert s.prices["output"] == 8.00


def test_settings_built_directly_still_work() -> None:
    s = Settings(provider="openai-compatible", base_url="http://x/v1", model="m")
    s.check_ready()
    assert s.api_key == ""


def test_unknown_provider_on_directly_built_settings_is_refused() -> None:
    # Built directly, Settings validates like every layer does (pydantic's ValidationError);
    # a provider assigned afterwards is still refused by check_ready with a UsageError.
    with pytest.raises(ValidationError, match="openrouter"):
        Settings(provider="nope", base_url="http://x/v1", model="m")
    s = Settings(base_url="http://x/v1", model="m")
    s.provider = "nope"
    with pytest.raises(UsageError, match="openrouter"):
        s.check_ready()
