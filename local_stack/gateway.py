"""A local API Gateway (REST, Lambda proxy) with the template's Cognito authorizer.

Turns HTTP requests into API Gateway proxy events for the API function, checks the ``Authorization``
ID token against the moto user pool's JWKS (signature, issuer, audience, expiry, token_use), and
answers CORS preflights, as the deployed API does.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import jwt

from local_stack.runner import Invoker

logger = logging.getLogger(__name__)
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class CognitoVerifier:
    def __init__(self, jwks_url: str, issuer: str, client_id: str) -> None:
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True)
        self._issuer = issuer
        self._client_id = client_id

    def claims(self, token: str) -> dict[str, Any] | None:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=["RS256"], audience=self._client_id, issuer=self._issuer
            )
        except jwt.PyJWTError:
            return None
        return claims if claims.get("token_use") == "id" else None


def rest_api_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as a REST API's Cognito authorizer hands them on: every value a string, lists comma-joined."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in claims.items()}


def _route_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")


class LocalGateway:
    def __init__(
        self,
        runner: Invoker,
        routes: list[tuple[str, str]],
        verifier: CognitoVerifier,
        stage: str,
        binary_types: Iterable[str],
        allowed_origin: str,
    ) -> None:
        self._runner = runner
        self._routes = [(m, p, _route_regex(p)) for m, p in routes]
        self._verifier = verifier
        self._stage = stage
        self._binary = {t.replace("~1", "/") for t in binary_types}
        self._origin = allowed_origin

    def _cors(self) -> list[tuple[str, str]]:
        return [("Access-Control-Allow-Origin", self._origin)]

    def _json(self, start: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body).encode()
        start(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "application/json"), *self._cors()],
        )
        return [data]

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        prefix = f"/{self._stage}"
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
        if method == "OPTIONS":
            start(
                "200 OK",
                [
                    *self._cors(),
                    ("Access-Control-Allow-Headers", "Authorization,Content-Type"),
                    ("Access-Control-Allow-Methods", "GET,POST,OPTIONS"),
                    ("Content-Length", "0"),
                ],
            )
            return [b""]
        match = next(
            ((p, m.groupdict()) for verb, p, rx in self._routes if verb == method and (m := rx.match(path))),
            None,
        )
        if match is None:
            return self._json(start, 403, {"message": "Missing Authentication Token"})
        token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").strip()
        claims = self._verifier.claims(token) if token else None
        if claims is None:
            return self._json(start, 401, {"message": "Unauthorized"})
        event = self._event(environ, method, path, match[0], match[1], claims)
        response = self._runner.invoke(event)
        return self._respond(start, response)

    def _event(
        self,
        environ: dict[str, Any],
        method: str,
        path: str,
        resource: str,
        params: dict[str, str],
        claims: dict[str, Any],
    ) -> dict[str, Any]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip()
        binary = content_type in self._binary
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if content_type:
            headers["Content-Type"] = content_type
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        now = time.time()
        return {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": resource,
                "httpMethod": method,
                "path": f"/{self._stage}{path}",
                "stage": self._stage,
                "requestId": str(uuid.uuid4()),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "accountId": "123456789012",
                "apiId": "local",
                "protocol": "HTTP/1.1",
                "authorizer": {"claims": rest_api_claims(claims)},
                "identity": {
                    "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                    "userAgent": headers.get("User-Agent"),
                },
            },
            "body": base64.b64encode(raw).decode() if binary else (raw.decode("utf-8", "replace") if raw else None),
            "isBase64Encoded": binary,
        }

    def _respond(self, start: StartResponse, response: dict[str, Any]) -> list[bytes]:
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ",".join(values)
        headers.setdefault("Access-Control-Allow-Origin", self._origin)
        status = int(response.get("statusCode", 200))
        start(f"{status} {'OK' if status < 400 else 'Error'}", list(headers.items()))
        return [data]
