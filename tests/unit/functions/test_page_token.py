"""next_token: opaque, bound to its caller and query, tamper-proof, short-lived."""

from __future__ import annotations

import base64
import json

import pytest

from functions.common.errors import InvalidPageTokenError
from functions.common.page_token import PageTokens

KEY = b"k" * 32
QUERY = ["status", "classified"]
POSITIONS = {"user#a": ["r1", "2026-11-26T10:00:00.000+00:00"], "shared": "done"}


def test_a_token_gives_back_its_positions() -> None:
    tokens = PageTokens(KEY)
    assert tokens.decode(tokens.encode("a", QUERY, POSITIONS), "a", QUERY) == POSITIONS


def test_an_edited_token_is_refused() -> None:
    tokens = PageTokens(KEY)
    payload, signature = tokens.encode("a", QUERY, POSITIONS).split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=="))
    document["pos"] = {"user#b": ["r9", "2026"]}
    forged = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    with pytest.raises(InvalidPageTokenError):
        tokens.decode(f"{forged}.{signature}", "a", QUERY)


def test_another_users_token_is_refused() -> None:
    tokens = PageTokens(KEY)
    with pytest.raises(InvalidPageTokenError):
        tokens.decode(tokens.encode("a", QUERY, POSITIONS), "b", QUERY)


def test_a_token_of_another_query_is_refused() -> None:
    tokens = PageTokens(KEY)
    with pytest.raises(InvalidPageTokenError):
        tokens.decode(tokens.encode("a", QUERY, POSITIONS), "a", ["label", "covid"])


def test_a_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(InvalidPageTokenError):
        PageTokens(KEY).decode(PageTokens(b"x" * 32).encode("a", QUERY, POSITIONS), "a", QUERY)


def test_an_expired_token_is_refused() -> None:
    now = [1000.0]
    tokens = PageTokens(KEY, ttl_s=60, clock=lambda: now[0])
    token = tokens.encode("a", QUERY, POSITIONS)
    now[0] += 61
    with pytest.raises(InvalidPageTokenError, match="expired"):
        tokens.decode(token, "a", QUERY)


@pytest.mark.parametrize("garbage", ["null", "", ".", "bnVsbA==", "a.b.c", "%%%.###", "x" * 5000])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidPageTokenError):
        PageTokens(KEY).decode(garbage, "a", QUERY)


def test_a_short_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PageTokens(b"short")
