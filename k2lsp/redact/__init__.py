"""Keep secrets out of output: known secret values (API keys in use) and common key patterns
are replaced by a marker in tool output, events, logs and trajectories."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any

MARKER = "[REDACTED]"

_KNOWN: set[str] = set()
_LOCK = threading.Lock()

# Common credential shapes. Conservative: long tokens with known prefixes, private key blocks,
# and quoted literals assigned to key-named settings. A pattern with a group named `s` has only
# that group replaced (the key name and quotes stay readable). Each pattern comes with literal
# triggers: it runs only when one of them occurs in the text (lower-cased for `(?i)` patterns),
# because a leading `\b` stops `re` from using its fast literal scan (~15 ms per 200 KB each).
_WORD = r"(?<![A-Za-z0-9_])"
_SPECS: list[tuple[tuple[str, ...], str]] = [
    (
        ("sk-",),
        _WORD + r"sk-(?:or-v1-|proj-|ant-)?[A-Za-z0-9_\-]{20,}",
    ),  # OpenAI/Moonshot/OpenRouter
    (("_live_", "_test_"), _WORD + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}\b"),  # Stripe
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), _WORD + r"gh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub
    (("github_pat_",), _WORD + r"github_pat_[A-Za-z0-9_]{40,}\b"),
    (("glpat-",), _WORD + r"glpat-[A-Za-z0-9_\-]{20,}\b"),  # GitLab
    (("AKIA", "ASIA"), _WORD + r"(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    (
        ("aws_secret_access_key", "aws_session_token"),
        r"(?i)(?:aws_secret_access_key|aws_session_token)[\"']?\s*[:=]\s*[\"']?"
        r"(?P<s>[A-Za-z0-9/+=]{40,})",
    ),
    (("xox",), _WORD + r"xox[abprs]-[A-Za-z0-9-]{10,}\b"),  # Slack
    (("xapp-",), _WORD + r"xapp-[0-9]-[A-Za-z0-9-]{10,}\b"),
    (("hooks.slack.com",), r"https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"),
    (("AIza",), _WORD + r"AIza[0-9A-Za-z_\-]{35}\b"),  # Google API key
    (("ya29.",), _WORD + r"ya29\.[0-9A-Za-z_\-]{20,}"),  # Google OAuth token
    (("hf_",), _WORD + r"hf_[A-Za-z0-9]{30,}\b"),  # Hugging Face
    (("gsk_",), _WORD + r"gsk_[A-Za-z0-9]{40,}\b"),  # Groq
    (("npm_",), _WORD + r"npm_[A-Za-z0-9]{36}\b"),  # npm
    (("pypi-AgE",), _WORD + r"pypi-AgE[A-Za-z0-9_\-]{50,}"),  # PyPI
    (("fw_",), _WORD + r"fw_[A-Za-z0-9]{20,}\b"),  # Fireworks
    (("cpk_",), _WORD + r"cpk_[A-Za-z0-9.]{20,}\b"),  # Chutes
    (
        ("eyJ",),
        _WORD + r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",
    ),  # JWT
    (
        ("PRIVATE KEY-----",),
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ),
    (("bearer",), r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9._~+/\-]{20,}=*)"),
    (("://",), r"://[^/\s:@]+:(?P<s>[^/\s@]{6,})@"),  # URL credentials
]
PATTERNS: list[re.Pattern[str]] = [re.compile(p) for _, p in _SPECS]
_TRIGGERS: list[tuple[str, ...]] = [
    tuple(t.lower() for t in trig) if p.startswith("(?i)") else trig for trig, p in _SPECS
]
_CASELESS = [p.startswith("(?i)") for _, p in _SPECS]

# `name = "literal"` assignments to key-named settings: find quoted assignments fast, then
# look at the name just before them.
_ASSIGNED = re.compile(r"""[:=]\s*["'](?P<s>[^"'\s]{8,})["']""")
_KEY_NAME = re.compile(
    r"(?i)(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token"
    r"|private[_-]?key|password|passwd)[\"']?\s*$"
)


# The gate of `may_change_json`: looser versions of the token patterns (no leading word check:
# in JSON text an escaped "\n" puts a letter before a token that starts a line).
_LOOSE: list[re.Pattern[str] | None] = [
    re.compile(p.removeprefix(_WORD)) if p.startswith((_WORD, "://")) else None for _, p in _SPECS
]
# An assignment cue inside a JSON string: `=` or `:`, escaped whitespace, then \" or '.
_ESCAPED_ASSIGN = re.compile(r"""[:=](?:\s|\\[nrt])*(?:\\"|')""")

# Words that make `redact` look for quoted `name = "literal"` assignments.
_ASSIGN_WORDS = ("key", "secret", "token", "passw")
# Every substring `redact` looks for before it does any work (lower-cased: a superset).
_CUES: tuple[str, ...] = tuple(
    sorted({t.lower() for trig in _TRIGGERS for t in trig} | set(_ASSIGN_WORDS))
)
_CUE_SPAN = max(len(c) for c in _CUES)


def _has_cue(text: str, secrets: Iterable[str]) -> bool:
    """Could `redact(text)` (with `secrets` known) change anything? False is a guarantee:
    `text` holds none of the secrets, no pattern trigger and no assignment word."""
    lower = text.lower()
    return any(c in lower for c in _CUES) or any(s in text for s in secrets)


def may_change_json(text: str, extra: Iterable[str] = ()) -> bool:
    """Could redacting the strings of the JSON document `text` change any of them?

    False is a guarantee (each check is a superset of what `redact` looks for, taking JSON
    escaping into account), so a caller may send `text` as it is; True means: redact the parsed
    strings one by one. Costs a few substring searches over `text`."""
    with _LOCK:
        pieces = list(_GATE_PIECES)
    for secret in extra:
        if secret and len(secret) >= 6:
            pieces.extend(_gate_pieces(secret))
    for piece in pieces:
        if piece in text:
            return True
    lower = text.lower()
    for loose, triggers, caseless in zip(_LOOSE, _TRIGGERS, _CASELESS, strict=True):
        if any(t in (lower if caseless else text) for t in triggers):
            if loose is None or loose.search(text):
                return True
    if any(k in lower for k in _ASSIGN_WORDS):
        return _ESCAPED_ASSIGN.search(text) is not None
    return False


def _replace_secret(match: re.Match[str]) -> str:
    if "s" not in match.re.groupindex:
        return MARKER
    whole, start = match.group(0), match.start()
    return whole[: match.start("s") - start] + MARKER + whole[match.end("s") - start :]


def _replace_assigned(match: re.Match[str]) -> str:
    text = match.string
    if not _KEY_NAME.search(text, max(0, match.start() - 48), match.start()):
        return match.group(0)
    return _replace_secret(match)


def register_secret(value: str | None) -> None:
    """Remember a secret value (an API key in use) so every later `redact` removes it."""
    if value and len(value) >= 6:
        with _LOCK:
            if value not in _KNOWN:
                _KNOWN.add(value)
                _GATE_PIECES.update(_gate_pieces(value))


PARTIAL_MIN = 12  # a cut-off piece of a registered secret is caught from this many characters
_PIECE_STEP = 4


def secret_pieces(secret: str) -> list[tuple[int, str]]:
    """(offset, piece) of `secret`: every prefix or suffix of PARTIAL_MIN or more characters,
    and every run of PARTIAL_MIN + 3 or more characters from its middle, contains a piece."""
    if len(secret) <= PARTIAL_MIN:
        return [(0, secret)]
    last = len(secret) - PARTIAL_MIN
    offsets = sorted({*range(0, last + 1, _PIECE_STEP), last})
    return [(i, secret[i : i + PARTIAL_MIN]) for i in offsets]


def _gate_pieces(secret: str) -> set[str]:
    return {
        piece for form in {secret, json.dumps(secret)[1:-1]} for _, piece in secret_pieces(form)
    }


_GATE_PIECES: set[str] = set()  # pieces of every registered secret, as is and JSON-escaped


def known_secrets() -> list[str]:
    """The registered secret values, longest first."""
    with _LOCK:
        return sorted(_KNOWN, key=len, reverse=True)


def secrets_version() -> int:
    """Changes whenever a new secret is registered (lets callers cache redacted texts)."""
    with _LOCK:
        return len(_KNOWN)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with known secrets and key-shaped tokens replaced by [REDACTED]."""
    if not text:
        return text
    with _LOCK:
        known = sorted(_KNOWN | {s for s in extra if s and len(s) >= 6}, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MARKER)
    lower = text.lower()
    for pat, triggers, caseless in zip(PATTERNS, _TRIGGERS, _CASELESS, strict=True):
        hay = lower if caseless else text
        if any(t in hay for t in triggers):
            text = pat.sub(_replace_secret, text)
            lower = text.lower() if caseless else lower
    if any(k in lower for k in _ASSIGN_WORDS):
        text = _ASSIGNED.sub(_replace_assigned, text)
    return text


def redact_obj(obj: Any) -> Any:
    """A deep copy of a JSON-like object with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


class StreamRedactor:
    """Redacts text that arrives in pieces (streamed model deltas), so a secret split over
    several pieces never gets out whole once the pieces are joined.

    `feed` returns what is safe to emit now and holds back the unfinished last word: the text
    is cut only at a whitespace, so a token without whitespace (an API key) is always redacted
    in one piece, and a reader never waits for more than one word. An unfinished private key
    block is held whole. Each emitted piece is redacted together with the last `HOLD` raw
    characters emitted before it, so a secret whose cue (`api_key = "`, `Bearer `) went out
    earlier is still recognised.
    `flush` returns the redacted rest; call it at the end of each reply.
    """

    HOLD = 256
    MAX_HOLD = 65_536  # past this a whitespace-free run is cut anyway (no key is that long)
    _SPACE = (" ", "\n", "\t", "\r")

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = tuple(extra)
        self._buf = ""
        self._prev = ""  # the raw text emitted last (context for the next redaction)
        # `secrets_version()` when `_prev` was last found to hold no cue at all (else -1);
        # then only the end of the next window can hold one.
        self._clean = -1
        self._secrets: tuple[str, ...] = ()

    def feed(self, text: str) -> str:
        """Take a piece; return the redacted text that can be emitted now ("" if none)."""
        self._buf += text
        cut = self._cut()
        if cut <= 0:
            return ""
        piece, self._buf = self._buf[:cut], self._buf[cut:]
        return self._emit(piece)

    def flush(self) -> str:
        """The redacted held tail; the redactor starts afresh."""
        piece, self._buf = self._buf, ""
        out = self._emit(piece) if piece else ""
        self._prev = ""
        self._clean = -1
        return out

    def _cut(self) -> int:
        buf = self._buf
        limit = len(buf)
        begin = buf.rfind("-----BEGIN", 0, limit)
        if begin != -1 and "-----END" not in buf[begin:] and len(buf) - begin < self.MAX_HOLD:
            limit = begin  # an unfinished private key block: hold it whole
        space = max(buf.rfind(c, 0, limit) for c in self._SPACE)
        if space >= 0:
            return space + 1
        return limit if len(buf) > self.MAX_HOLD else 0

    def _emit(self, piece: str) -> str:
        prev, self._prev = self._prev, (self._prev + piece)[-self.HOLD :]
        window = prev + piece
        version = secrets_version()
        if version != self._clean:  # look at the whole window
            with _LOCK:
                known = _KNOWN | {s for s in self._extra if s and len(s) >= 6}
            self._secrets = tuple(known)
            scope = window
        else:  # `prev` held no cue: a new one must end inside the piece (secrets: anywhere)
            scope = window[-(len(piece) + _CUE_SPAN) :]
        if not _has_cue(scope, ()) and not any(s in window for s in self._secrets):
            # Nothing in the window for `redact` to find: the piece goes out as it is, and
            # the next window's start (a suffix of this one) holds no cue either.
            self._clean = version
            return piece
        self._clean = -1
        if not prev:
            return redact(piece, self._extra)
        both = redact(window, self._extra)
        if both == window:  # nothing to redact in the window (the usual case)
            # The piece starts a word (cut at a whitespace), so on its own it has no match the
            # window lacks; after a forced cut (mid-word) it is redacted alone too.
            return piece if prev[-1] in self._SPACE else redact(piece, self._extra)
        before = redact(prev, self._extra)
        return both[len(before) :] if both.startswith(before) else redact(piece, self._extra)
