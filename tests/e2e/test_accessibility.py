"""WCAG 2.1 AA in the browser: axe-core on every page, reflow at 320 px, status messages and focus,
focus indicator contrast, the keyboard-only path, and the viewer's zoom, pan and window (pixel checks)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from local_stack.stack import LocalDeployment
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
AXE = ROOT / "client" / "node_modules" / "axe-core" / "axe.min.js"
PICKER = "Choose a PNG, JPEG or DICOM file, or drop it here"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = (320, 768, 1280)


def _new_user(stack: LocalDeployment) -> tuple[str, str]:
    name = f"a11y-{uuid.uuid4().hex[:8]}@example.com"
    return name, stack.create_user(name)


def _axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA)
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in found["violations"]]


def _page_width(page: Any) -> int:
    return int(page.evaluate("() => document.documentElement.scrollWidth"))


def _signed_in(stack: LocalDeployment, browser: Any, width: int = 1280) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    name, password = _new_user(stack)
    sign_in(page, stack, name, password)
    page.get_by_text("Signed in as").wait_for(timeout=15_000)
    return context, page


def _classify(page: Any, sample: str = "covid-2.png") -> None:
    page.get_by_label(PICKER).set_input_files(str(SAMPLES / sample))
    page.get_by_test_id("label").wait_for(timeout=30_000)
    page.wait_for_selector('[data-testid="heatmap-canvas"][data-drawn="true"]', timeout=15_000)


def _canvas_sum(page: Any, test_id: str) -> list[int]:
    """A canvas's pixels in 64 coarse blocks (sum of red per block): enough to see a zoom or a window."""
    return list(
        page.evaluate(
            """(id) => {
              const c = document.querySelector(`[data-testid="${id}"]`);
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              const sums = new Array(64).fill(0);
              for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
                const block = Math.floor(8 * y / c.height) * 8 + Math.floor(8 * x / c.width);
                sums[block] += d[(y * c.width + x) * 4] + d[(y * c.width + x) * 4 + 3];
              }
              return sums;
            }""",
            test_id,
        )
    )


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return r, g, b


def _record(artifacts: Path, name: str, value: Any) -> None:
    path = artifacts / "accessibility.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2))


def test_axe_finds_no_violation_on_any_page(client_stack: LocalDeployment, browser: Any, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        assert client_stack.client_url is not None
        page.goto(client_stack.client_url)
        page.get_by_label("Email").wait_for()
        found["sign-in"] = _axe(page)
        name, password = _new_user(client_stack)
        sign_in(page, client_stack, name, password)
        page.get_by_text("No results yet.").wait_for(timeout=15_000)
        found["signed-in"] = _axe(page)
        _classify(page)
        found["result"] = _axe(page)
        page.get_by_text("Technical details").click()
        found["result-details"] = _axe(page)
        page.get_by_test_id("history-row").first.wait_for(timeout=15_000)
        page.reload()
        page.get_by_test_id("history-row").first.get_by_role("button").click()
        page.wait_for_selector('[data-testid="heatmap-canvas"][data-drawn="true"]', timeout=15_000)
        found["history-opened"] = _axe(page)
    finally:
        context.close()
    _record(artifacts, "axe", {page_name: len(v) for page_name, v in found.items()})
    assert found == {page_name: [] for page_name in found}


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_reflows_without_sideways_scrolling(
    client_stack: LocalDeployment, browser: Any, artifacts: Path, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    widths: dict[str, int] = {}
    try:
        assert client_stack.client_url is not None
        page.goto(client_stack.client_url)
        page.get_by_label("Email").wait_for()
        widths["sign-in"] = _page_width(page)
        page.screenshot(path=str(artifacts / f"sign-in-{width}.png"), full_page=True)
        name, password = _new_user(client_stack)
        sign_in(page, client_stack, name, password)
        page.get_by_text("No results yet.").wait_for(timeout=15_000)
        widths["signed-in"] = _page_width(page)
        _classify(page, "no_findings-1.png")
        page.get_by_text("Technical details").click()
        page.get_by_test_id("history-row").first.wait_for(timeout=15_000)
        widths["result-and-history"] = _page_width(page)
        page.screenshot(path=str(artifacts / f"result-{width}.png"), full_page=True)
    finally:
        context.close()
    _record(artifacts, f"page-width-at-{width}", widths)
    assert max(widths.values()) <= width, widths


def test_a_result_is_announced_and_its_heading_takes_the_focus(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page, "pneumonia-1.png")
        label = page.get_by_test_id("label").inner_text()
        assert label in page.get_by_test_id("announcer").inner_text()
        assert page.evaluate("() => document.activeElement.id") == "result-heading"
    finally:
        context.close()


def test_a_result_opened_from_the_history_is_announced_and_focused(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page, "covid-1.png")
        page.get_by_test_id("history-row").first.wait_for(timeout=15_000)
        page.reload()
        row = page.get_by_test_id("history-row").first
        shown_date = row.locator("td").first.inner_text()
        button = row.get_by_role("button", name=f"Open the result of {shown_date}", exact=True)
        assert button.count() == 1  # the name says the date as the table shows it
        button.focus()
        page.keyboard.press("Enter")
        page.get_by_test_id("label").wait_for(timeout=15_000)
        assert page.get_by_test_id("label").inner_text() in page.get_by_test_id("announcer").inner_text()
        assert page.evaluate("() => document.activeElement.id") == "result-heading"
    finally:
        context.close()


def test_focus_rings_stand_out_three_to_one_on_every_background(
    client_stack: LocalDeployment, browser: Any, artifacts: Path
) -> None:
    context, page = _signed_in(client_stack, browser)
    ratios: dict[str, float] = {}
    try:
        for name, locator, background in (
            ("page", page.get_by_label(PICKER), "main"),
            ("header", page.get_by_role("button", name="Sign out"), ".top"),
        ):
            locator.focus()
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")  # a keyboard focus, so that :focus-visible applies
            ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineColor")
            behind = page.evaluate(
                "(sel) => getComputedStyle(document.querySelector(sel)).backgroundColor === 'rgba(0, 0, 0, 0)'"
                " ? getComputedStyle(document.documentElement).backgroundColor"
                " : getComputedStyle(document.querySelector(sel)).backgroundColor",
                background,
            )
            assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"
            ratios[name] = round(_contrast(_rgb(ring), _rgb(behind)), 2)
    finally:
        context.close()
    _record(artifacts, "focus-ring-contrast", ratios)
    assert min(ratios.values()) >= 3, ratios


def test_the_keyboard_alone_leads_from_sign_in_to_a_result_and_through_the_viewer(
    client_stack: LocalDeployment, page: Any
) -> None:
    name, password = _new_user(client_stack)
    choosers: list[Any] = []
    # Listening from the start: Playwright turns on its file chooser interception when the first listener
    # comes, and a key pressed before that is on opens a chooser it never sees.
    # (A lambda: Playwright tags each handler with an attribute, which a bound builtin cannot take.)
    page.on("filechooser", lambda chooser: choosers.append(chooser))  # noqa: PLW0108
    assert client_stack.client_url is not None
    page.goto(client_stack.client_url)
    page.get_by_label("Email").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.type") == "email"
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.get_by_text("Signed in as").wait_for(timeout=15_000)
    while page.evaluate("() => document.activeElement.type") != "file":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    for _ in range(100):
        if choosers:
            break
        page.wait_for_timeout(100)
    choosers[0].set_files(str(SAMPLES / "covid-2.png"))
    page.wait_for_selector('[data-testid="heatmap-canvas"][data-drawn="true"]', timeout=30_000)
    assert page.evaluate("() => document.activeElement.id") == "result-heading"
    while page.evaluate("() => document.activeElement.getAttribute('aria-label')") != "Image viewer":
        page.keyboard.press("Tab")
    state = page.get_by_test_id("view-state")
    page.keyboard.press("+")
    assert state.inner_text() == "Zoom 125 %, window as sent"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("0")
    assert state.inner_text() == "Zoom 100 %, window as sent"
    while page.evaluate("() => document.activeElement.textContent") != "Lungs":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert state.inner_text() == "Zoom 100 %, window lungs"


def test_zooming_changes_the_image_and_the_heatmap_follows(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page)
        image, heat = _canvas_sum(page, "preview-canvas"), _canvas_sum(page, "heatmap-canvas")
        page.get_by_role("button", name="Zoom in").click()
        page.get_by_role("button", name="Zoom in").click()
        zoomed, zoomed_heat = _canvas_sum(page, "preview-canvas"), _canvas_sum(page, "heatmap-canvas")
        assert zoomed != image
        assert zoomed_heat != heat
        page.get_by_role("group", name="Image viewer").focus()
        page.keyboard.press("ArrowRight")  # pan: both layers move together
        assert _canvas_sum(page, "preview-canvas") != zoomed
        assert _canvas_sum(page, "heatmap-canvas") != zoomed_heat
        page.get_by_role("button", name="Reset view").click()
        assert (_canvas_sum(page, "preview-canvas"), _canvas_sum(page, "heatmap-canvas")) == (image, heat)
    finally:
        context.close()


def test_the_wheel_zooms_about_the_pointer(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page)
        box = page.get_by_test_id("heatmap-canvas").bounding_box()
        page.mouse.move(box["x"] + 10, box["y"] + 10)
        page.mouse.wheel(0, -100)
        page.get_by_text("Zoom 125 %").wait_for(timeout=5_000)
    finally:
        context.close()


def test_a_window_preset_and_a_drag_change_brightness_and_contrast(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page)
        image, heat = _canvas_sum(page, "preview-canvas"), _canvas_sum(page, "heatmap-canvas")
        page.get_by_role("button", name="Bone").click()
        assert _canvas_sum(page, "preview-canvas") != image
        assert _canvas_sum(page, "heatmap-canvas") == heat  # the window is the image's, not the heatmap's
        page.get_by_role("button", name="As sent").click()
        assert _canvas_sum(page, "preview-canvas") == image
        page.get_by_label("changes brightness and contrast").check()
        box = page.get_by_test_id("heatmap-canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2 + 60, steps=5)
        page.mouse.up()
        assert "window level" in page.get_by_test_id("view-state").inner_text()
        assert _canvas_sum(page, "preview-canvas") != image
    finally:
        context.close()


def test_the_sliders_say_their_values_in_words(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page)
        opacity = page.get_by_label("Opacity")
        assert opacity.get_attribute("aria-valuetext") == "50 %"
        opacity.fill("0.8")
        assert opacity.get_attribute("aria-valuetext") == "80 %"
        assert page.locator("output").inner_text() == "80 %"
        assert page.get_by_label("Brightness (level)").get_attribute("aria-valuetext") == "level 128"
    finally:
        context.close()


def test_the_history_names_the_file_and_a_repeat_says_it_matched_the_first(
    client_stack: LocalDeployment, browser: Any
) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        _classify(page, "no_findings-2.png")
        assert "Last file sent: no_findings-2.png" in page.locator(".sent").inner_text()
        page.get_by_test_id("history-file").first.wait_for(timeout=15_000)
        assert page.get_by_test_id("history-file").first.inner_text() == "no_findings-2.png"
        assert page.get_by_test_id("earlier").count() == 0
        page.get_by_label(PICKER).set_input_files(str(SAMPLES / "no_findings-2.png"))
        page.get_by_test_id("earlier").wait_for(timeout=30_000)
        assert page.get_by_test_id("history-row").count() == 1
    finally:
        context.close()


def test_a_dicom_shows_its_study(client_stack: LocalDeployment, browser: Any) -> None:
    context, page = _signed_in(client_stack, browser)
    try:
        page.get_by_label(PICKER).set_input_files(str(SAMPLES / "study.dcm"))
        facts = page.get_by_test_id("facts")
        facts.wait_for(timeout=30_000)
        assert "study.dcm" in facts.inner_text()
        assert "Modality" in facts.inner_text()
    finally:
        context.close()


def test_a_pinch_zooms_the_image(client_stack: LocalDeployment, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True)
    page = context.new_page()
    try:
        name, password = _new_user(client_stack)
        sign_in(page, client_stack, name, password)
        _classify(page)
        page.get_by_test_id("heatmap-canvas").scroll_into_view_if_needed()
        box = page.get_by_test_id("heatmap-canvas").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        touch = context.new_cdp_session(page)

        def fingers(kind: str, spread: float) -> None:
            points = [{"x": cx - spread, "y": cy, "id": 0}, {"x": cx + spread, "y": cy, "id": 1}]
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points if kind != "touchEnd" else []})

        fingers("touchStart", 20)
        for spread in (30, 40, 50, 60):
            fingers("touchMove", spread)
        fingers("touchEnd", 60)
        zoom = int(re.match(r"Zoom (\d+) %", page.get_by_test_id("view-state").inner_text()).group(1))  # type: ignore[union-attr]
        assert zoom > 150  # fingers three times as far apart: about 300 %
    finally:
        context.close()
