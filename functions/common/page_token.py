"""Opaque, tamper-proof ``next_token`` values for paginated listings.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(payload))`` with a key that only the API
function holds (a Secrets Manager secret of the stack). The payload binds the token to the caller
(``sub``), to the exact query it continues and to an expiry, so a forged, edited, foreign, expired or
replayed-on-another-query token is refused with 400 before it reaches DynamoDB. It carries positions
(result id and time), never an object key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from functions.common.errors import InvalidPageTokenError

TOKEN_TTL_S: Final = 3600
MAX_TOKEN_CHARS: Final = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    def __init__(self, key: bytes, ttl_s: int = TOKEN_TTL_S, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the page token key needs at least 32 bytes")
        self._key = key
        self._ttl_s = ttl_s
        self._clock = clock

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, sub: str, query: list[str], positions: Mapping[str, Any]) -> str:
        payload = json.dumps(
            {"sub": sub, "q": query, "exp": int(self._clock()) + self._ttl_s, "pos": positions},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str, sub: str, query: list[str]) -> dict[str, Any]:
        """The positions a token carries, if this caller issued it for this query and it is fresh."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise InvalidPageTokenError("next_token is not valid")
        encoded, signature = token.split(".")
        try:
            payload, mac = _unb64(encoded), _unb64(signature)
        except (binascii.Error, ValueError) as exc:
            raise InvalidPageTokenError("next_token is not valid") from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidPageTokenError("next_token is not valid")
        document = json.loads(payload)
        if document.get("sub") != sub or document.get("q") != query:
            raise InvalidPageTokenError("next_token belongs to another query")
        if int(document.get("exp", 0)) < self._clock():
            raise InvalidPageTokenError("next_token has expired; start the listing again")
        positions: dict[str, Any] = document["pos"]
        return positions
