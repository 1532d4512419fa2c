"""Secret redaction: key-shaped tokens and registered values never leave in output."""

from __future__ import annotations

import pytest

from k2lsp.redact import MARKER, redact, redact_obj, register_secret

SECRETS = [
    "sk-" + "a1B2" * 10,  # OpenAI / Moonshot style
    "sk-or-v1-" + "0f" * 32,  # OpenRouter
    "sk-ant-api03-" + "Xy_9" * 10,  # Anthropic
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",  # Stripe
    "ghp_" + "A" * 36,  # GitHub
    "github_pat_" + "11ABCDEFG" * 6,
    "glpat-" + "xYz12" * 5,  # GitLab
    "AKIAIOSFODNN7EXAMPLE",  # AWS key id
    "xoxb-1234567890-abcdefghij",  # Slack
    "AIza" + "SyD-" * 8 + "abc",  # Google
    "hf_" + "abcdEFGH" * 5,  # Hugging Face
    "npm_" + "a1" * 18,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_key_shaped_tokens_are_redacted(secret: str) -> None:
    out = redact(f"config: {secret} end")
    assert secret not in out and MARKER in out and out.startswith("config: ")


@pytest.mark.parametrize(
    "text, kept",
    [
        ('API_KEY = "Zk3mQ9xT2bV7nL4p"', 'API_KEY = "'),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = ",
        ),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "Authorization: Bearer "),
        ("postgres://admin:s3cretPassw0rd@db:5432/app", "postgres://admin:"),
    ],
)
def test_assignments_keep_the_name_and_hide_the_value(text: str, kept: str) -> None:
    out = redact(text)
    assert out.startswith(kept) and MARKER in out
    assert "Zk3mQ9" not in out and "wJalrX" not in out and "s3cret" not in out


def test_private_key_blocks_are_redacted() -> None:
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
    assert redact(f"key:\n{pem}\nrest") == f"key:\n{MARKER}\nrest"


@pytest.mark.parametrize(
    "code",
    [
        "token = get_token()",
        "password = request.form['password']",
        "def api_key(self) -> str:",
        'password = ""',
        "for token in tokens:",
        "sha = 'da39a3ee5e6b4b0d3255bfef95601890afd80709'",
    ],
)
def test_ordinary_code_is_left_alone(code: str) -> None:
    assert redact(code) == code


def test_registered_values_and_nested_objects() -> None:
    register_secret("hunter2-custom-value")
    event = {
        "type": "tool_result",
        "text": ["ok hunter2-custom-value"],
        "n": 3,
        "args": {"key": "sk-" + "q" * 30},
    }
    out = redact_obj(event)
    assert out == {"type": "tool_result", "text": [f"ok {MARKER}"], "n": 3, "args": {"key": MARKER}}
    assert redact("", extra=["x" * 10]) == ""
    assert redact("short abc", extra=["abc"]) == "short abc"  # too short to be a secret


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_stream_redactor_catches_a_key_split_over_pieces(size: int) -> None:
    from k2lsp.redact import StreamRedactor, register_secret

    register_secret("zz-registered-secret-42")
    key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"
    text = (
        "word " * 80
        + f"the key is {key} and "
        + "more " * 80
        + "zz-registered-secret-42\nAuthorization: Bearer abcdefghijklmnopqrstuvwxyz0123 "
        + "pad " * 80
        + 'api_key = "hunter2hunter2" '
        + "tail " * 80
    )
    r = StreamRedactor()
    pieces = [r.feed(text[i : i + size]) for i in range(0, len(text), size)]
    assert any(pieces)  # text flows before the end, not only at flush
    out = "".join(pieces) + r.flush()
    for secret in (key, "zz-registered-secret-42", "abcdefghijklmnopqrstuvwxyz0123", "hunter2"):
        assert secret not in out
    assert out.count("[REDACTED]") == 4
    assert out.replace("[REDACTED]", "") == redact(text).replace("[REDACTED]", "")
    assert r.flush() == ""


def test_stream_redactor_holds_back_only_the_unfinished_word() -> None:
    from k2lsp.redact import StreamRedactor

    r = StreamRedactor()
    assert r.feed("Let me read the file") == "Let me read the "  # live, not held for 256 chars
    assert r.feed(" first.\n") == "file first.\n"
    assert r.feed("sk-proj-AbCdEfGh") == ""  # a token in progress waits for its end
    assert r.feed("IjKlMnOpQrStUv01 ok") == "[REDACTED] "
    assert r.flush() == "ok"
