"""The setup checks a user needs before a first run, one line each: the configuration, the API
key (wherever it comes from: K2LSP_API_KEY, the provider's own variable such as
MOONSHOT_API_KEY, a file, the editor), the model host (a real `GET {base_url}/models` with that
key) and the sandbox a run would use.

Every message names the base URL it used (without credentials) and never the key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from k2lsp.errors import K2lspError
from k2lsp.redact import redact
from k2lsp.redact.url import host_url

OK, FAIL, WARN = "ok", "FAIL", "warn"


@dataclass
class Check:
    """One line of a setup report."""

    name: str
    status: str  # ok | FAIL | warn
    detail: str
    fix: str = ""

    def render(self) -> str:
        """`[ok] name: detail` plus an indented `fix:` line."""
        line = f"[{self.status}] {self.name}: {self.detail}"
        return line + (f"\n       fix: {self.fix}" if self.fix and self.status != OK else "")

    def line(self) -> str:
        """The problem in one line: `name: detail — fix`."""
        return f"{self.name}: {self.detail}" + (f" — {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, str]:
        """Plain JSON form."""
        return {k: redact(v) for k, v in asdict(self).items()}


def check_key(settings: Any) -> Check:
    """Whether a key is configured for the provider, and where it came from."""
    from k2lsp.config.providers import PROVIDERS

    preset = PROVIDERS.get(settings.provider)
    if settings.api_key:
        where = settings.api_key_source or settings.api_key_env or "the configuration"
        where = f"${where}" if where.isupper() else where
        return Check("API key", OK, f"set (from {where})")
    if preset is not None and not preset.key_required:
        return Check("API key", OK, f"none needed for provider {settings.provider!r}")
    return Check(
        "API key",
        FAIL,
        f"no API key for provider {settings.provider!r}",
        f"set {settings.key_hint()} in the environment the editor starts k2lsp with "
        "(or the editor's api_key_cmd / K2: Set API key)",
    )


def check_model(settings: Any) -> Check:
    """`GET {base_url}/models` with the configured key: reachable, the model offered, and its
    context window with its source."""
    import asyncio

    from k2lsp.model.client import K2Client

    url = host_url(settings.base_url or "") or "(no base URL)"
    name = f"{settings.model} on {settings.provider} ({url})"
    try:
        settings.check_ready()
        client = K2Client(settings)
    except K2lspError as exc:
        return Check("model", WARN, f"{url} not checked: {exc}", "set provider, base URL and key")

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
        first = redact(str(exc)).splitlines()[0]
        return Check(
            "model",
            FAIL,
            f"GET {url}/models failed: {first}",
            f"check base_url (K2LSP_BASE_URL) and the key ({settings.key_hint()})",
        )
    if ids and settings.model not in ids:
        return Check(
            "model",
            FAIL,
            f"{name}: not offered; the host has {', '.join(ids[:8])}",
            "set model (K2LSP_MODEL) to one of them",
        )
    detail = f"{name}: context window {window:,} tokens, from {source}"
    if source.startswith("built-in"):  # a self-hosted server rarely runs the full window
        return Check("model", WARN, detail, "set `context_length` to the window the host serves")
    return Check("model", OK, detail)


def check_sandbox(repo: Path, settings: Any) -> Check:
    """Which sandbox a run on `repo` would use (probing docker and bwrap), or why none."""
    from k2lsp.testrun.sandbox_select import choose

    kind = settings.sandbox or "auto"
    try:
        chosen, why = choose(kind, repo, settings.sandbox_image)
    except K2lspError as exc:
        return Check("sandbox", FAIL, str(exc).splitlines()[0], "run `k2lsp doctor` for details")
    if chosen == "auto":
        return Check(
            "sandbox",
            FAIL,
            f"no sandbox usable: {why}",
            "apt-get install bubblewrap (or start docker and `k2lsp sandbox build`); "
            "runs that need tests stop otherwise",
        )
    if chosen == "none":
        return Check("sandbox", WARN, "sandbox 'none': tests run WITHOUT isolation", "")
    if chosen == "bwrap":
        from k2lsp.sandbox import bwrap

        problem = bwrap.problem()
        if problem:
            return Check("sandbox", FAIL, f"bwrap: {problem}", "allow user namespaces")
    if chosen == "docker":
        from k2lsp.sandbox import docker

        problem = docker.problem(settings.sandbox_image)
        if problem:
            return Check("sandbox", FAIL, f"docker: {problem}", "start docker; k2lsp sandbox build")
    return Check("sandbox", OK, f"would use {chosen} ({why})")


def setup_checks(settings: Any, repo: Path) -> list[Check]:
    """Key, model host and sandbox, in that order (blocking: call from a worker thread)."""
    return [check_key(settings), check_model(settings), check_sandbox(repo, settings)]


def summary(checks: list[Check]) -> dict[str, Any]:
    """The JSON answer of `k2lsp.checkSetup` / `k2lsp doctor --json`."""
    problems = [c.line() for c in checks if c.status != OK]
    return {
        "ok": not any(c.status == FAIL for c in checks),
        "checks": [c.to_dict() for c in checks],
        "problems": [redact(p) for p in problems],
    }
