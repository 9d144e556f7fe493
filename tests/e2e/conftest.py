"""The web client in headless Chromium (Debian's package; no browser is downloaded) against the local stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.stack import DEMO_USER, LocalDeployment
from local_stack.template import StackContext
from model.builder.artifacts import DEFAULT_CHECKPOINT, build

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIST = ROOT / "client" / "dist"
ARTIFACTS = ROOT / "build" / "e2e"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="no Chromium (apt install chromium; .ci/run does)")
    for item in items:
        if "e2e" in item.keywords and CHROMIUM is None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def client_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    if not (CLIENT_DIST / "index.html").is_file():
        pytest.fail("client/dist is not built: run `make client` (make e2e and make test do)")
    out = tmp_path_factory.mktemp("e2e-model")
    build(DEFAULT_CHECKPOINT, out, ("onnx",))
    context = StackContext(stack_name="xray-e2e")
    with LocalDeployment(out / "artifacts", batching_window_s=0.3, context=context, client_dir=CLIENT_DIST) as stack:
        yield stack


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def sign_in(page: Any, stack: LocalDeployment, username: str = DEMO_USER, password: str | None = None) -> None:
    assert stack.client_url is not None
    page.goto(stack.client_url)
    page.get_by_label("Email").fill(username)
    page.get_by_label("Password").fill(password or stack.demo_password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
