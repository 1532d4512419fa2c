"""What a failed attempt is (retry or give up), and the SDK-argument form of a request body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k2lsp.model.errors import Failure

if TYPE_CHECKING:
    from collections.abc import Callable

    RetryCallback = Callable[[int, float, str], None]


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, failure: Failure, malformed: bool = False) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.malformed = malformed


def _malformed(reason: str) -> _Retry:
    return _Retry(Failure(reason, True), malformed=True)


def _is_transport_error(exc: BaseException) -> bool:
    mod = type(exc).__module__
    return isinstance(exc, OSError) or mod.startswith(("httpx", "httpcore", "h11", "anyio"))


def sdk_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """Arguments for the SDK's `create` that send `body` as is.

    The SDK walks every message of typed params to transform them (about 14 ms per request
    with a long history); the body is already in wire form, so everything but the model goes
    through `extra_body`, which the SDK merges into the JSON unchanged.
    """
    extra = dict(body.get("extra_body") or {})
    rest = {k: v for k, v in body.items() if k not in ("model", "stream", "extra_body")}
    return {"model": body["model"], "messages": [], "stream": True, "extra_body": {**rest, **extra}}
