"""training.adapt's HTML report in headless Chromium: it renders alone, its figures load, and a
screenshot is kept (build/e2e/adapt-report.png) for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.adapt import caveats, summarize
from training.adapt_report import render

pytestmark = pytest.mark.e2e


def _predictions(seed: int, shift: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    p = np.clip(0.5 + (y - 0.5) * shift + rng.normal(0, 0.2, 60), 0.01, 0.99)
    return {
        "paths": [f"{'covid' if v else 'no_findings'}/{i}.png" for i, v in enumerate(y)],
        "y": y.tolist(),
        "groups": [f"p{i}" for i in range(60)],
        "probs": np.c_[1 - p, p].tolist(),
        "called": (p >= 0.5).tolist(),
        "refused": [i < 2 for i in range(60)],
    }


@pytest.fixture
def report_page(page: Any, artifacts: Path) -> Any:
    predictions = {"before": _predictions(0, 0.2), "after": _predictions(1, 0.7)}
    before, after = summarize(predictions["before"]), summarize(predictions["after"])
    site = type("Site", (), {"patients_named": True})()
    report = {
        "site": "St Example",
        "start": {"version": "resnet18-multiclass-20261127131059"},
        "images_used": 60,
        "patients": 60,
        "folds": 5,
        "strategy": "full",
        "strategy_description": "the classifier for 2 epochs, then the whole network",
        "before": before,
        "after": after,
        "images_skipped": [{"path": "covid/broken.png", "reason": "unreadable: OSError"}],
        "caveats": caveats(site, before, {"a": 30, "b": 30}),  # type: ignore[arg-type]
    }
    sources = {p: ("a" if p.startswith("covid") else "b") for p in predictions["after"]["paths"]}
    path = artifacts / "adapt-report.html"
    path.write_text(render(report, predictions, sources))
    page.goto(path.as_uri())
    page.screenshot(path=str(artifacts / "adapt-report.png"), full_page=True)
    page.report = report
    return page


def test_the_report_renders_with_its_figures_loaded(report_page: Any) -> None:
    widths = report_page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
    assert len(widths) == 2
    assert min(widths) > 100


def test_the_report_says_whether_the_goal_was_met_and_what_the_answers_will_say(report_page: Any) -> None:
    met = report_page.report["after"]["meets_goal"]
    verdict = report_page.locator(".verdict").inner_text()
    assert ("is met" if met else "is not met") in verdict
    assert ("confidence: normal" if met else "confidence: low") in verdict


def test_the_report_lists_the_images_left_out(report_page: Any) -> None:
    assert "covid/broken.png" in report_page.content()
