"""What the host offers: GET /models (ids, context windows with their source, reasoning support),
the one-time context detection of a client, and the "unknown model" error listing the ids.

A mixin of `K2Client` (model/client.py); the host shapes themselves are in model/hosts.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from k2lsp.errors import ModelNotFound, ProviderError
from k2lsp.model.hosts import guess_host, native_window, window_from_entry
from k2lsp.model.types import ModelInfo
from k2lsp.redact import redact

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from k2lsp.config import Settings
    from k2lsp.model.errors import Failure
    from k2lsp.providers import ModelProfile

log = logging.getLogger(__name__)


class ModelCatalog:
    """GET /models and context detection for a client (see K2Client for the attributes)."""

    settings: Settings
    profile: ModelProfile
    _context: int | None
    _context_source: str
    _models_checked: bool
    _secrets: tuple[str, ...]

    def _sdk(self) -> AsyncOpenAI:
        raise NotImplementedError

    def _classify(self, status: int, body: Any, headers: Any = None) -> Failure:
        raise NotImplementedError

    @property
    def context_length(self) -> int:
        """The context window: settings, else GET /models, else the model profile."""
        return self._context or self.profile.context_length

    @property
    def context_source(self) -> str:
        """Where `context_length` came from (settings, which host field, or the profile)."""
        if self._context:
            return self._context_source
        return f"built-in profile of {self.settings.model!r} (the host reported no window)"

    async def detect_context(self) -> tuple[int, str]:
        """(window, source) after asking the host once (for `models` and `doctor`)."""
        await self._learn_context()
        return self.context_length, self.context_source

    async def list_models(self) -> list[ModelInfo]:
        """What GET /models offers (with context length and reasoning support when given)."""
        import openai

        try:
            page = await self._sdk().models.list()
        except openai.APIStatusError as exc:
            failure = self._classify(exc.status_code, exc.body)
            raise failure.error or ProviderError(
                f"GET /models failed ({failure.reason})", status=exc.status_code
            ) from None
        except openai.APIConnectionError as exc:
            msg = redact(f"cannot reach {self.settings.base_url}: {exc}", self._secrets)
            raise ProviderError(msg, kind="connection") from None
        entries = [item.model_dump() for item in page.data]
        host = guess_host(self.settings.provider, entries)
        out = []
        for data in entries:
            window = window_from_entry(data)
            if window is None and data.get("id") == self.settings.model:
                window = await native_window(
                    host, self.settings.base_url, self.settings.model, self._fetch_json
                )
            reasoning = data.get("supports_reasoning")
            out.append(
                ModelInfo(
                    str(data.get("id")),
                    window.tokens if window else None,
                    bool(reasoning) if reasoning is not None else None,
                    window.source if window else None,
                )
            )
        return out

    async def _fetch_json(self, method: str, url: str, body: Any) -> Any:
        """A JSON request to a host's native API through the SDK's own HTTP client."""
        sdk = self._sdk()
        if method == "GET":
            return await sdk.get(url, cast_to=object)
        return await sdk.post(url, body=body, cast_to=object)

    async def _learn_context(self) -> None:
        """Once per client: take the context length from GET /models when the host gives it
        (every host's shape, see model/hosts.py), and think when the host says the model
        reasons although its name is not a thinking one (e.g. vLLM `--served-model-name k2`):
        temperature 1.0, placeholder reasoning."""
        if self._models_checked:
            return
        self._models_checked = True
        try:
            models = await self.list_models()
        except Exception as exc:
            log.debug("GET /models failed: %s", redact(str(exc), self._secrets))
            return
        for m in models:
            if m.id != self.settings.model:
                continue
            if m.context_length and self.settings.context_length is None:
                self._context = m.context_length
                self._context_source = m.context_source or "GET /v1/models"
            if m.supports_reasoning and not self.profile.thinks:
                self.profile = replace(self.profile, thinking_switch="always", temperature=1.0)

    async def _model_not_found(self, reason: str) -> ModelNotFound:
        try:
            available = [m.id for m in await self.list_models()]
        except Exception:
            available = []
        listing = ", ".join(available) if available else "(GET /models returned nothing)"
        return ModelNotFound(
            f"The host does not know model {self.settings.model!r} ({reason}). It offers: "
            f"{listing}. Set K2LSP_MODEL or `model` in k2lsp.toml.",
            available=available,
        )
