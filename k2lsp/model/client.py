"""The K2 client: one streamed Chat Completions request per `complete()`, with our own retries.

Built on the official `openai` SDK (`AsyncOpenAI(max_retries=0)`, imported lazily). Each attempt
reads the raw SSE lines (`with_streaming_response`) so a stream that ends without `[DONE]` is
detected and thrown away whole. Malformed replies (tool_calls finish with no usable call,
reasoning-only replies, unparsable leaked tool tokens) are retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import TYPE_CHECKING, Any

from k2lsp.config.providers import PROVIDERS, default_prices, model_profile
from k2lsp.config.settings import Settings
from k2lsp.errors import MalformedReply, ProviderError
from k2lsp.model.attempts import check_retry_delay, failed_attempt_usage
from k2lsp.model.catalog import ModelCatalog
from k2lsp.model.cost import cost_usd
from k2lsp.model.errors import Failure, classify_status, classify_stream_error
from k2lsp.model.failures import _is_transport_error, _malformed, _Retry
from k2lsp.model.request import (
    WireHistory,
    choose_max_tokens,
    count_tool_calls,
    encode_body,
    estimate_from_chars,
    estimate_tokens,
    json_chars,
    normalize_tools,
)
from k2lsp.model.retry import backoff_delay
from k2lsp.model.stream import Accumulator, DeltaCallback, SSEParser
from k2lsp.model.toolargs import checked_calls
from k2lsp.model.toolparse import extract_leaked_calls, has_leaked_tokens
from k2lsp.model.types import AssistantTurn, ToolCall, Usage
from k2lsp.redact import redact, register_secret

if TYPE_CHECKING:
    from collections.abc import Callable

    from openai import AsyncOpenAI

    RetryCallback = Callable[[int, float, str], None]

log = logging.getLogger(__name__)


class K2Client(ModelCatalog):
    """Talks to one K2 host/model as configured by `Settings`."""

    def __init__(self, settings: Settings) -> None:
        settings.check_ready()
        register_secret(settings.api_key)
        self.settings = settings
        self.preset = PROVIDERS[settings.provider]
        self.profile = model_profile(settings.model)
        self.prices = {**default_prices(settings.provider, settings.model), **settings.prices}
        self.total_usage = Usage()
        self._sdk_client: AsyncOpenAI | None = None
        self._context: int | None = settings.context_length
        self._context_source = "setting `context_length`"
        # GET /models once, for the context length and (for a name we do not know to think)
        # reasoning support.
        self._models_checked = settings.context_length is not None and self.profile.thinks
        self._secrets = (settings.api_key,) if settings.api_key else ()
        # Real prompt tokens per JSON character of the last request the host reported usage
        # for: calibrates the prompt estimate `max_tokens` is chosen from.
        self._tokens_per_char: float | None = None
        # Outgoing copies and sizes of history messages, made once per message (see request).
        self.wire = WireHistory()
        self._tools: tuple[list[dict[str, Any]], list[dict[str, Any]], Any, int] | None = None
        if settings.thinking is False and self.profile.thinking_switch == "always":
            log.warning("%s always thinks; `thinking = false` is ignored", settings.model)

    # plumbing --------------------------------------------------------------------------------
    def _sdk(self) -> AsyncOpenAI:
        if self._sdk_client is None:
            from openai import AsyncOpenAI

            self._sdk_client = AsyncOpenAI(
                base_url=self.settings.base_url,
                api_key=self.settings.api_key or "not-needed",
                max_retries=0,
                timeout=self.settings.request_timeout_s,
            )
        return self._sdk_client

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._sdk_client is not None:
            await self._sdk_client.close()
            self._sdk_client = None

    @property
    def thinking(self) -> bool:
        """Whether requests run with thinking on."""
        switch = self.profile.thinking_switch
        return switch == "always" or (
            switch == "extra_body" and self.settings.thinking is not False
        )

    # request ---------------------------------------------------------------------------------
    def build_request(
        self, messages: list[dict[str, Any]], tool_schemas: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The keyword arguments of one chat.completions request.

        The messages are copies of the history's, made once per message and shared by every
        request that sends it (`WireHistory`): read them, never modify them."""
        return self._build(messages, tool_schemas)[0]

    def _build(
        self, messages: list[dict[str, Any]], tool_schemas: list[dict[str, Any]] | None
    ) -> tuple[dict[str, Any], int]:
        """The request body and its prompt size in JSON characters."""
        msgs, msg_chars = self.wire.build(
            messages, send_field=self.preset.reasoning_send, thinking=self.thinking
        )
        tools, tool_chars = self._normalized_tools(tool_schemas or [])
        chars = msg_chars + tool_chars
        prompt = estimate_from_chars(chars, self._tokens_per_char)
        temp = self.settings.temperature
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": msgs,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": choose_max_tokens(
                self.settings.max_output_tokens, prompt, self.context_length
            ),
            "temperature": min(1.0, max(0.0, self.profile.temperature if temp is None else temp)),
        }
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        if self.profile.thinking_switch == "extra_body":
            state = "disabled" if self.settings.thinking is False else "enabled"
            body["extra_body"] = {"thinking": {"type": state}}
        return body, chars

    def _normalized_tools(self, schemas: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """`normalize_tools(schemas)` and its `json_chars`, remembered while the same list
        (unchanged) is offered again: the loop offers one list for the whole run."""
        cached = self._tools
        if cached is not None and cached[0] is schemas and cached[2] == schemas:
            return cached[1], cached[3]
        tools = normalize_tools(schemas)
        self._tools = (schemas, tools, copy.deepcopy(schemas), json_chars(tools))
        return tools, self._tools[3]

    # the call --------------------------------------------------------------------------------
    async def complete(
        self,
        messages: list[dict[str, Any]],
        tool_schemas: list[dict[str, Any]] | None = None,
        *,
        on_delta: DeltaCallback | None = None,
        on_retry: RetryCallback | None = None,
    ) -> AssistantTurn:
        """One assistant reply (a stream that reached [DONE]), after bounded retries.

        The usage of every failed attempt is counted (`AssistantTurn.failed_attempts`, or
        `ProviderError.attempt_usage` when the call fails for good).
        """
        await self._learn_context()
        body, chars = self._build(messages, tool_schemas)
        raw = encode_body(body, self.wire.texts)  # the one encoding, old messages reused
        first_n = count_tool_calls(messages)
        attempts = 1 + max(0, self.settings.max_retries)
        failed: list[Usage] = []
        for attempt in range(1, attempts + 1):
            acc = Accumulator(on_delta=on_delta)
            try:
                turn = await self._attempt(body, first_n, on_delta, chars, acc, raw)
            except _Retry as retry:
                self._count_failed(failed, acc, retry.failure.status, chars)
                try:
                    delay = self._retry_delay(retry, attempt, attempts)
                except ProviderError as exc:
                    raise self._charged(exc, failed) from None
                log.warning("K2 attempt %d failed (%s); retrying in %.1fs", attempt, retry, delay)
                if on_retry is not None:
                    on_retry(attempt, delay, retry.failure.reason)
                await asyncio.sleep(delay)
                continue
            except ProviderError as exc:
                self._count_failed(failed, acc, exc.status, chars)
                raise self._charged(exc, failed) from None
            turn.failed_attempts = failed
            for usage in [*failed, turn.usage]:
                self.total_usage += usage
            return turn
        raise AssertionError("unreachable")

    def _retry_delay(self, retry: _Retry, attempt: int, attempts: int) -> float:
        """Seconds to wait before the next attempt; raises when there is none to make."""
        if attempt == attempts:
            raise self._give_up(retry, attempts)
        failure = retry.failure
        check_retry_delay(
            failure.delay_s, self.settings.max_retry_after_s, failure.reason, failure.status
        )
        return backoff_delay(
            attempt,
            self.settings.retry_base_delay_s,
            self.settings.retry_max_delay_s,
            failure.delay_s,
        )

    def _charged(self, exc: ProviderError, failed: list[Usage]) -> ProviderError:
        """Add the failed attempts to the totals and attach them to `exc` (returned)."""
        for usage in failed:
            self.total_usage += usage
        exc.attempt_usage = list(failed)
        return exc

    def _count_failed(
        self, failed: list[Usage], acc: Accumulator, status: int | None, chars: int
    ) -> None:
        prompt = estimate_from_chars(chars, self._tokens_per_char)
        usage = failed_attempt_usage(acc, status, prompt, self.prices)
        if usage is not None:
            failed.append(usage)

    def _give_up(self, retry: _Retry, attempts: int) -> ProviderError:
        reason = retry.failure.reason
        if retry.malformed:
            return MalformedReply(
                f"The model sent an unusable reply {attempts} times in a row ({reason}). Try "
                "again, or try another provider or model.",
                kind="malformed",
            )
        return ProviderError(
            f"The model host kept failing after {attempts} attempts ({reason}). Try again "
            "later or switch provider.",
            status=retry.failure.status,
            kind="transient",
        )

    async def _attempt(
        self,
        body: dict[str, Any],
        first_n: int,
        on_delta: DeltaCallback | None,
        chars: int = 0,
        acc: Accumulator | None = None,
        raw: bytes | None = None,
    ) -> AssistantTurn:
        import openai

        acc = acc if acc is not None else Accumulator(on_delta=on_delta)
        parser = SSEParser()
        try:
            async with self._post_stream(raw if raw is not None else encode_body(body)) as resp:
                async for line in resp.iter_lines():
                    self._consume(parser.feed(line), acc)
                self._consume(parser.flush(), acc)
        except openai.APIStatusError as exc:
            failure = self._classify(exc.status_code, exc.body, exc.response.headers)
            if failure.status == 404 and failure.error is None:
                raise await self._model_not_found(failure.reason) from None
            if failure.retry:
                raise _Retry(failure) from None
            assert failure.error is not None
            raise failure.error from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise _Retry(
                Failure(redact(f"connection failed: {exc}", self._secrets), True)
            ) from None
        except openai.APIError as exc:  # a bare APIError is transient (k2-protocol.md)
            raise _Retry(Failure(redact(f"host error: {exc}", self._secrets), True)) from None
        except Exception as exc:
            if not _is_transport_error(exc):
                raise
            reason = redact(f"stream broken: {type(exc).__name__}: {exc}", self._secrets)
            raise _Retry(Failure(reason, True)) from None
        if not parser.done:
            raise _Retry(Failure("the stream ended before [DONE]", True))
        acc.close()
        return self._finish(acc, body, first_n, chars)

    def _post_stream(self, raw: bytes) -> Any:
        """POST the encoded body to /chat/completions through the SDK, streamed and unparsed.

        What `chat.completions.with_streaming_response.create(**sdk_arguments(body))` does,
        byte for byte (`encode_body`), minus the SDK encoding the whole history again: its
        transport, auth, headers, timeouts and error mapping are all used as they are."""
        from openai import AsyncStream
        from openai._constants import RAW_RESPONSE_HEADER
        from openai._response import AsyncResponseContextManager
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        request = self._sdk().post(
            "/chat/completions",
            cast_to=ChatCompletion,
            content=raw,
            # the headers and auth `create` uses (bearer only: never an admin key)
            options={"headers": {RAW_RESPONSE_HEADER: "stream"}, "security": {"bearer_auth": True}},
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
        return AsyncResponseContextManager(request)

    def _classify(self, status: int, body: Any, headers: Any = None) -> Failure:
        return classify_status(
            status, body, key_hint=self.settings.key_hint(), secrets=self._secrets, headers=headers
        )

    def _consume(self, data: str | None, acc: Accumulator) -> None:
        if data is None:
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise _Retry(Failure(f"unreadable stream chunk: {data[:80]!r}", True)) from None
        if not isinstance(chunk, dict):
            return
        acc.feed(chunk)
        if acc.error is not None:
            failure = classify_stream_error(
                acc.error, key_hint=self.settings.key_hint(), secrets=self._secrets
            )
            if failure.retry or failure.error is None:
                raise _Retry(failure)
            raise failure.error

    def _finish(
        self, acc: Accumulator, body: dict[str, Any], first_n: int, chars: int = 0
    ) -> AssistantTurn:
        reasoning, content = acc.reasoning, acc.content
        calls = [c for c in acc.calls() if c[1]]
        leaked: list[tuple[str, str, str]] = []
        had_tokens = has_leaked_tokens(content) or has_leaked_tokens(reasoning)
        if has_leaked_tokens(content):
            content, found = extract_leaked_calls(content)
            leaked += found
        if reasoning is not None and has_leaked_tokens(reasoning):
            reasoning, found = extract_leaked_calls(reasoning)
            leaked += found
        if had_tokens and not calls and not leaked:
            raise _malformed("raw tool-call tokens without a parsable call")
        calls = calls or leaked
        tool_calls = checked_calls(
            [
                ToolCall(cid or f"functions.{name}:{first_n + i}", name, args)
                for i, (cid, name, args) in enumerate(calls)
            ],
            acc.finish_reason,
        )
        if not tool_calls and acc.finish_reason == "tool_calls":
            raise _malformed("finish_reason tool_calls without a usable call")
        if not tool_calls and not content.strip():
            raise _malformed("a reply with reasoning only" if reasoning else "an empty reply")
        extra = {"reasoning_details": acc.details} if acc.details else {}
        return AssistantTurn(
            reasoning=reasoning,
            content=content or None,
            tool_calls=tool_calls,
            usage=self._usage(acc, body, chars),
            finish_reason=acc.finish_reason,
            extra=extra,
            reasoning_field=acc.reasoning_field,
        )

    def _usage(self, acc: Accumulator, body: dict[str, Any], chars: int = 0) -> Usage:
        raw = acc.usage
        if raw is None:  # the host sent none: estimate so budgets still work
            text = (acc.reasoning or "") + acc.content + "".join(c[2] for c in acc.calls())
            usage = Usage(
                estimate_tokens(body["messages"], body.get("tools") or []), 0, len(text) // 4
            )
        else:
            details = raw.get("prompt_tokens_details") or {}
            cached = raw.get("cached_tokens") or details.get("cached_tokens") or 0
            usage = Usage(
                int(raw.get("prompt_tokens") or 0),
                int(cached),
                int(raw.get("completion_tokens") or 0),
            )
            if usage.prompt_tokens > 0 and chars > 0:  # calibrate the next estimate
                self._tokens_per_char = usage.prompt_tokens / chars
        usage.cost_usd = cost_usd(usage, self.prices)
        return usage

    # history and models ----------------------------------------------------------------------
    def history_message(self, turn: AssistantTurn) -> dict[str, Any]:
        """The assistant message to store: reasoning byte for byte in the host's field."""
        field = self.preset.reasoning_send or turn.reasoning_field or "reasoning_content"
        return turn.to_message(field)
