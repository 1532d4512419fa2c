"""The one typed definition of k2lsp's settings and the one validator every layer goes through.

`Settings` (a pydantic model) declares each key with its type, bounds (`Field(ge=..., le=...)`),
choices (`Literal`) and checks (URLs, paths, providers). Every layer — a config file, the
environment (`K2LSP_<KEY>`), the editor (snake_case or camelCase) and CLI flags — hands a
partial dict to `validate_layer`, which returns the typed values, one problem line per bad
value in one format, and the unknown keys:

    <where>: <key>: <problem> (got <value>)
    /repo/k2lsp.toml: max_steps: must be >= 1 (got -5)
    K2LSP_MAX_STEPS: max_steps: must be >= 1 (got -5)

Text from the environment and the command line is read as a TOML value first when the key is
not a string (`K2LSP_MAX_STEPS=-5` is the number -5), so it fails with the same words as the
same value in a file. The configuration reference in docs/configuration.md is generated from
this model (`python -m k2lsp.config.doc`) and a test keeps the two equal.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from k2lsp.config.providers import PROVIDERS, provider_names
from k2lsp.config.tables import Limits, McpSettings
from k2lsp.config.tables import SandboxLimits as SandboxLimits  # re-exported
from k2lsp.errors import UsageError

SandboxKind = Literal["auto", "docker", "bwrap", "none"]
PRICE_KEYS: tuple[str, ...] = ("input_cache_hit", "input", "output")
SECRET_KEYS = frozenset({"api_key"})
# Runtime fields filled by `k2lsp.config.settings.load_settings`, never read from a layer.
DERIVED = frozenset({"api_key_env", "api_key_source", "untrusted"})
# K2LSP_* variables that are not settings but that k2lsp reads (no warning for them). Variables
# only the tests, CI scripts and benchmarks read are named K2TEST_*, which k2lsp never reads.
OTHER_ENV = frozenset(f"K2LSP_{n}" for n in "TRUST_REPO DEBUG RG DEBIAN_MIRROR LSP_LOG".split())


def _provider(value: str) -> str:
    if value not in PROVIDERS:
        raise ValueError(f"unknown provider {value!r}; choose one of: {provider_names()}")
    return value


def _price_key(value: str) -> str:
    if value not in PRICE_KEYS:
        raise ValueError(f"unknown price; use {', '.join(PRICE_KEYS)} (USD per 1M tokens)")
    return value


def _url(value: str) -> str:
    if value == "":
        return value  # unset: the provider preset's URL
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _path(value: Any) -> Any:
    if isinstance(value, Path):
        return value.expanduser()
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must be a path, not an empty string")
        return Path(value).expanduser()
    return value  # the strict Path check reports the type


Provider = Annotated[str, AfterValidator(_provider)]
Url = Annotated[str, AfterValidator(_url)]
FsPath = Annotated[Path, BeforeValidator(_path)]
Positive = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=1)]
Price = Annotated[float, Field(ge=0)]
PriceKey = Annotated[str, AfterValidator(_price_key)]


class Settings(BaseModel):
    """Everything a run needs to know. `api_key` never appears in repr, logs or events.

    Building one validates the given values (strict types, bounds, choices); assigning
    attributes afterwards does not (`load_settings` fills in the provider preset that way).
    """

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=False)

    provider: Provider = Field(default="moonshot", description="host preset (see Presets)")
    base_url: Url = Field(default="", description="OpenAI-compatible base URL; empty: the preset's")
    model: str = Field(default="", description="model id; empty: the preset's default model")
    api_key: str = Field(
        default="",
        repr=False,
        description="API key (prefer an env var: K2LSP_API_KEY, MOONSHOT_API_KEY…)",
    )
    # request
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="sampling temperature; unset: the model profile's"
    )
    max_output_tokens: Count = Field(default=32_000, description="output tokens per request")
    thinking: bool | None = Field(
        default=None, description="switch thinking on/off; unset: the profile's"
    )
    context_length: Count | None = Field(
        default=None, description="context window in tokens; unset: from GET /models or the profile"
    )
    prices: dict[PriceKey, Price] = Field(
        default_factory=dict, description="USD per 1M tokens: input_cache_hit, input, output"
    )
    max_retries: int = Field(
        default=3, ge=0, le=100, description="retries of a failed model request"
    )
    request_timeout_s: Positive = Field(
        default=600.0, description="timeout of one model request (s)"
    )
    # budgets
    max_steps: Count = Field(default=300, description="step budget of a run")
    max_tokens: Count | None = Field(default=None, description="total token budget of a run")
    budget_usd: Positive | None = Field(default=None, description="cost budget of a run (USD)")
    timeout_s: Positive | None = Field(default=None, description="wall-time budget of a run (s)")
    # tools and sandbox
    sandbox: SandboxKind = Field(default="auto", description="where tests and commands run")
    sandbox_image: str = Field(
        default="k2lsp-sandbox:latest", description="docker image of the sandbox"
    )
    sandbox_profile: FsPath | None = Field(
        default=None, description="a sandbox limits profile (TOML)"
    )
    sandbox_limits: Limits = Field(
        default_factory=dict, description="single sandbox limits (see sandbox.md)"
    )
    test_command: str | None = Field(
        default=None, description="how to run the tests; unset: detected"
    )
    command_timeout_s: Positive = Field(default=600.0, description="timeout of one command (s)")
    allow_commands: list[str] = Field(
        default_factory=list, description="command patterns that run without asking"
    )
    allow_test_changes: bool = Field(default=False, description="let the model edit test files")
    secret_globs: list[str] = Field(
        default_factory=list, description="more secret files (`!pattern` lifts a default)"
    )
    allow_secrets: bool = Field(default=False, description="let the model read secret files")
    lsp_enabled: bool = Field(default=True, description="language servers as tools (refactor.md)")
    lsp_confine: Literal["auto", "bwrap", "none"] = Field(default="auto", description="their jail")
    lsp_servers: dict[str, list[str]] = Field(default_factory=dict, description="language -> argv")
    mcp: McpSettings = Field(
        default_factory=McpSettings, description="MCP servers whose tools the model may call"
    )
    # where things go
    state_dir: FsPath | None = Field(
        default=None, description="runs, trajectories, transcripts; unset: $XDG_STATE_HOME/k2lsp"
    )
    keep_conversations: int = Field(
        default=5, ge=0, le=100, description="conversations kept per workspace for follow-ups"
    )
    conversation_days: Positive = Field(default=7.0, description="days a conversation is kept")
    extra: dict[str, Any] = Field(default_factory=dict, description="free table for extensions")
    retry_base_delay_s: float = Field(default=1.0, ge=0, description="first retry backoff (s)")
    retry_max_delay_s: float = Field(default=60.0, ge=0, description="longest retry backoff (s)")
    max_retry_after_s: float = Field(
        default=120.0, ge=0, description="a host-forced retry delay above this ends the attempt (s)"
    )
    # derived by load_settings (not settable)
    api_key_env: str = Field(default="", description="derived: the env var the key came from")
    api_key_source: str = Field(
        default="", description="derived: env var or file the key came from"
    )
    untrusted: list[str] = Field(
        default_factory=list, description="derived: repository keys ignored (no trust)"
    )

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in type(self).model_fields
            if name != "api_key"
        )
        return f"Settings({shown}, api_key={'<set>' if self.api_key else '<unset>'})"

    __str__ = __repr__

    def key_hint(self) -> str:
        """Which env var the user should set (or fix) for the key of this provider."""
        preset = PROVIDERS.get(self.provider)
        names = [n for n in (self.api_key_env, preset.key_env if preset else "") if n]
        names.append("K2LSP_API_KEY")
        return " or ".join(dict.fromkeys(names))

    def check_ready(self) -> None:
        """Raise UsageError unless a model can be called (provider, base URL, model id, key)."""
        if self.provider not in PROVIDERS:
            raise UsageError(
                f"unknown provider {self.provider!r}; choose one of: {provider_names()}"
            )
        if not self.base_url:
            raise UsageError(
                f"provider {self.provider!r} has no base URL: set K2LSP_BASE_URL or `base_url` "
                "in k2lsp.toml"
            )
        if not self.model:
            raise UsageError("no model id: set K2LSP_MODEL or `model` in k2lsp.toml")
        preset = PROVIDERS[self.provider]
        if preset.key_required and not self.api_key:
            raise UsageError(
                f"no API key for provider {self.provider!r}: set {self.key_hint()} in the "
                "environment"
            )


SETTABLE: tuple[str, ...] = tuple(n for n in Settings.model_fields if n not in DERIVED)
# CLI flags of the headless run that set a field (flag -> field).
FLAGS: dict[str, str] = {
    "--provider": "provider",
    "--base-url": "base_url",
    "--model": "model",
    "--max-steps": "max_steps",
    "--max-tokens": "max_tokens",
    "--budget-usd": "budget_usd",
    "--timeout": "timeout_s",
    "--sandbox": "sandbox",
}


def env_name(key: str) -> str:
    """The environment variable of a field: `max_steps` -> `K2LSP_MAX_STEPS`."""
    return "K2LSP_" + key.upper()


def snake(name: str) -> str:
    """camelCase -> snake_case (snake_case passes through)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def suggest(key: str, known: typing.Iterable[str]) -> str:
    """` (did you mean 'model'?)` for a near miss, else ``."""
    near = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _takes_text(annotation: Any) -> bool:
    """Does a field of this type take a plain string (str, Path, string Literal)?"""
    if annotation in (str, Path):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _takes_text(typing.get_args(annotation)[0])
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return any(_takes_text(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def parse_text(key: str, text: str, model: type[BaseModel] = Settings) -> Any:
    """A value given as text (env var, CLI flag): a TOML value unless the field takes text."""
    info = model.model_fields.get(key)
    if info is None or _takes_text(info.annotation):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # validation says what is expected


def _problem(err: Mapping[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    words = {
        "greater_than_equal": f"must be >= {fmt_number(ctx.get('ge'))}",
        "greater_than": f"must be > {fmt_number(ctx.get('gt'))}",
        "less_than_equal": f"must be <= {fmt_number(ctx.get('le'))}",
        "less_than": f"must be < {fmt_number(ctx.get('lt'))}",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a table (an object)",
        "model_type": "must be a table (an object)",
        "path_type": "must be a path",
        "is_instance_of": "must be a path",
        "literal_error": f"must be one of {ctx.get('expected')}",
        "extra_forbidden": "unknown key",
    }
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return words.get(kind, err["msg"].lower())


def _shown(key: str, value: Any) -> str:
    if key.split(".")[0] in SECRET_KEYS:
        return "***"
    return str(value) if isinstance(value, int | float) else repr(value)


Label = Callable[[str], str]


class Problem(NamedTuple):
    """One bad value: where it came from, its key (dotted for nested), what is wrong."""

    where: str
    key: str
    problem: str
    got: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.problem} (got {self.got})"

    @property
    def field(self) -> str:
        return self.key.split(".")[0]


def validate_layer(
    values: Mapping[str, Any], label: Label | str, model: type[BaseModel] = Settings
) -> tuple[dict[str, Any], list[Problem], list[str]]:
    """Validate one layer's partial dict against `model`.

    Returns (typed values of the valid keys, one problem line per bad value, unknown keys).
    `label` names where a key came from (a file path, `K2LSP_X`, `--flag`, an editor key).
    """
    if callable(label):
        where = label
    else:

        def where(_key: str, text: str = label) -> str:
            return text

    fields = model.model_fields
    known = {k: v for k, v in values.items() if k in fields and k not in DERIVED}
    unknown = [k for k in values if k not in known]
    problems: list[Problem] = []
    bad: set[str] = set()
    try:
        model.model_validate(known)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if p != "[key]"]
            top = loc[0] if loc else ""
            bad.add(top)
            key = ".".join(loc)
            problems.append(Problem(where(top), key, _problem(err), _shown(key, err["input"])))
    good = {k: v for k, v in known.items() if k not in bad}
    checked = model.model_validate(good)
    return {k: getattr(checked, k) for k in good}, problems, unknown


def unknown_line(where: str, key: str, known: typing.Iterable[str]) -> str:
    """The one warning for a key no model field has."""
    return f"{where}: unknown setting {key!r} ignored{suggest(key, known)}"


def raise_problems(problems: list[Problem]) -> None:
    """One UsageError listing every bad value (nothing is half-applied)."""
    raise_problems_text([str(p) for p in problems])


def raise_problems_text(lines: list[str]) -> None:
    """`raise_problems` for problems already formatted."""
    if len(lines) == 1:
        raise UsageError(lines[0])
    if lines:
        raise UsageError("invalid settings:\n  " + "\n  ".join(lines))


def fmt_number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
