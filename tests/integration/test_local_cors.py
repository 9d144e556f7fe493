"""The local stack's AWS (moto server) answers a browser's CORS preflight, as Cognito does: without
it the web client cannot sign in (moto 5.2.6 answered it with a 500, which pyproject.toml excludes)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

pytestmark = pytest.mark.integration


@pytest.fixture
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}/"
    server.stop()


def test_a_sign_in_preflight_is_allowed_for_the_clients_origin(moto_url: str) -> None:
    request = urllib.request.Request(
        moto_url,
        method="OPTIONS",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
        assert "x-amz-target" in response.headers["Access-Control-Allow-Headers"].lower()
