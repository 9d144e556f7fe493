"""Sign in, classify, look at the heatmap, find it in the history: as a user would, in a real browser."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from local_stack.stack import LocalDeployment
from tests import images
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PICKER = "Choose a PNG, JPEG or DICOM file, or drop it here"
# The viewer marks its canvases once it has drawn the image and heatmap it was given.
DRAWN = '[data-testid="heatmap-canvas"][data-drawn="true"]'


def _api_classify(stack: LocalDeployment, data: bytes) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.api_url}/classify",
        data=data,
        method="POST",
        headers={"Content-Type": "image/png", "Authorization": stack.harness.id_token()},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _heatmap_pixels(page: Any) -> int:
    """How many pixels of the heatmap layer are drawn (alpha > 0)."""
    return int(
        page.evaluate(
            """() => {
              const c = document.querySelector('[data-testid="heatmap-canvas"]');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;
            }"""
        )
    )


def _outline_pixels(page: Any) -> int:
    """How many pixels of the heatmap layer are the lung outline's white (the colour ramp has no white)."""
    return int(
        page.evaluate(
            """() => {
              const c = document.querySelector('[data-testid="heatmap-canvas"]');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let n = 0;
              for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 255) n++;
              return n;
            }"""
        )
    )


def _new_user(stack: LocalDeployment) -> tuple[str, str]:
    name = f"user-{uuid.uuid4().hex[:8]}@example.com"
    return name, stack.create_user(name)


def test_a_wrong_password_shows_an_error(client_stack: LocalDeployment, page: Any) -> None:
    sign_in(page, client_stack, password="Wrong-password-1!")
    assert "Wrong email or password" in page.get_by_role("alert").inner_text()
    assert page.get_by_text("Signed in as").count() == 0


def test_a_sample_xray_gets_the_apis_answer_and_a_drawn_heatmap(
    client_stack: LocalDeployment, page: Any, artifacts: Path
) -> None:
    sample = SAMPLES / "covid-2.png"
    expected = _api_classify(client_stack, sample.read_bytes())
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(sample))
    page.get_by_test_id("label").wait_for(timeout=30_000)
    for label, p in expected["probabilities"].items():
        assert page.get_by_test_id(f"p-{label}").inner_text() == f"{100 * p:.1f}%"
    assert page.get_by_test_id("low-confidence").count() == (expected["confidence"]["level"] == "low")
    page.wait_for_selector(DRAWN, timeout=15_000)
    assert _heatmap_pixels(page) > 0
    page.screenshot(path=str(artifacts / "result.png"), full_page=True)


def test_the_heatmap_outlines_the_lung_fields(client_stack: LocalDeployment, page: Any, artifacts: Path) -> None:
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / "no_findings-1.png"))
    page.get_by_text("white line: the outline of the lung fields").wait_for(timeout=30_000)
    assert _outline_pixels(page) > 100
    page.screenshot(path=str(artifacts / "lung-outline.png"), full_page=True)


def test_a_result_opens_from_the_history(client_stack: LocalDeployment, page: Any, artifacts: Path) -> None:
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / "pneumonia-2.png"))
    page.get_by_test_id("label").wait_for(timeout=30_000)
    label = page.get_by_test_id("label").inner_text()
    page.get_by_test_id("history-row").first.wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts / "history.png"), full_page=True)
    page.reload()
    page.get_by_test_id("history-row").first.get_by_role("button").click()
    assert page.get_by_test_id("label").inner_text(timeout=15_000) == label
    page.wait_for_selector(DRAWN, timeout=15_000)
    assert _heatmap_pixels(page) > 0  # the stored heatmap, read by its presigned URL


def test_a_dicom_is_classified(client_stack: LocalDeployment, page: Any) -> None:
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / "study.dcm"))
    assert page.get_by_test_id("label").inner_text(timeout=30_000) == "COVID-19"


def test_a_photograph_is_refused_in_plain_words(client_stack: LocalDeployment, page: Any) -> None:
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / "photograph.jpg"))
    assert "No pair of lungs was found" in page.get_by_test_id("reason").inner_text(timeout=30_000)


def test_a_non_image_is_refused_before_it_is_sent(client_stack: LocalDeployment, page: Any) -> None:
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / "not-an-xray.png"))
    assert "not a PNG, JPEG or DICOM" in page.get_by_role("alert").inner_text(timeout=10_000)


def test_a_large_image_goes_through_the_presigned_upload(
    client_stack: LocalDeployment, page: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(images.encode(images.Image.fromarray(images.chest(2200, seed=3)), "PNG", compress_level=0))
    assert big.stat().st_size > 4 * 1024 * 1024
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_label(PICKER).set_input_files(str(big))
    assert page.get_by_test_id("label").inner_text(timeout=60_000) in ("COVID-19", "No findings", "Pneumonia (other)")
    page.get_by_test_id("history-file").first.wait_for(timeout=15_000)
    assert page.get_by_test_id("history-file").first.inner_text() == "big.png"  # carried by the form's metadata


def test_a_second_user_does_not_see_the_first_users_history(client_stack: LocalDeployment, page: Any) -> None:
    first, first_password = _new_user(client_stack)
    sign_in(page, client_stack, first, first_password)
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / "no_findings-2.png"))
    page.get_by_test_id("history-row").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").wait_for(timeout=15_000)
    second, second_password = _new_user(client_stack)
    sign_in(page, client_stack, second, second_password)
    page.get_by_text("No results yet.").wait_for(timeout=15_000)
    assert page.get_by_test_id("history-row").count() == 0


def test_an_expired_session_leads_back_to_sign_in(client_stack: LocalDeployment, page: Any) -> None:
    name, password = _new_user(client_stack)
    sign_in(page, client_stack, name, password)
    page.get_by_text("Signed in as").wait_for(timeout=15_000)
    page.evaluate("() => localStorage.clear()")  # what an expired refresh token leaves: no usable session
    page.get_by_label("Status").select_option("classified")  # the next API call
    page.get_by_text("Your session has expired. Sign in again.").wait_for(timeout=15_000)
    assert page.get_by_label("Email").is_visible()


def test_the_result_page_fits_a_narrow_screen(client_stack: LocalDeployment, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        name, password = _new_user(client_stack)
        sign_in(page, client_stack, name, password)
        page.get_by_label(PICKER).set_input_files(str(SAMPLES / "covid-1.png"))
        page.get_by_test_id("label").wait_for(timeout=30_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    finally:
        context.close()
