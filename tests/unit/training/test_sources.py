"""Source-aware evaluation: patient-level bootstrap, per-source figures, the feature source probe."""

from __future__ import annotations

import numpy as np

from training.sources import bootstrap_ci, feature_source_probe, source_report


def test_the_bootstrap_resamples_patients_not_images() -> None:
    # Two patients: one with 9 images all 1, one with 1 image of 0. Resampling images would give means
    # near 0.9; resampling patients gives only 0, 0.9 or 1 (whole patients come along).
    values = np.array([1] * 9 + [0])
    groups = ["a"] * 9 + ["b"]
    means = set()
    rng_seeds = range(5)
    for seed in rng_seeds:
        low, high = bootstrap_ci(groups, lambda i: float(values[i].mean()), resamples=200, seed=seed) or (0, 0)
        means.update({round(low, 3), round(high, 3)})
    assert means <= {0.0, 0.9, 1.0}


def test_a_source_with_one_class_has_no_auc() -> None:
    report = source_report(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.8]), ["p1", "p2", "p3"], 0.5)
    assert report["sensitivity"]["value"] == 2 / 3
    assert "auc" not in report
    assert "specificity" not in report


def test_a_source_with_both_classes_gets_all_three_with_intervals() -> None:
    rng = np.random.default_rng(0)
    y = np.array([1] * 40 + [0] * 60)
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 100), 0, 1)
    report = source_report(y, p, [f"p{i}" for i in range(100)], 0.5)
    for name in ("sensitivity", "specificity", "auc"):
        low, high = report[name]["ci95"]
        assert low <= report[name]["value"] <= high


def test_the_feature_probe_finds_a_source_written_into_the_features() -> None:
    rng = np.random.default_rng(0)
    sources = ["a"] * 60 + ["b"] * 60
    groups = [f"g{i}" for i in range(120)]
    plain = rng.normal(0, 1, (120, 16))
    marked = plain.copy()
    marked[:60, 0] += 6.0  # source a leaves a mark
    assert feature_source_probe(marked, sources, groups)["accuracy"] > 0.95
    assert feature_source_probe(plain, sources, groups)["accuracy"] < 0.75
