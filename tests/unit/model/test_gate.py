"""The out-of-distribution gate: its statistics, its rule, its threshold and where it is stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from model.builder.architectures import ExportWrapper, FeatureGate, build_model
from model.builder.checkpoint import load_checkpoint, save_checkpoint
from model.core.labels import labels_for
from model.serving.metadata import ModelMetadata
from model.serving.policy import ACCEPTED, NOT_A_CHEST_XRAY, NOT_UPRIGHT, gate_decisions
from training.gate import choose_threshold, choose_threshold_per_source, fit_statistics, install, refused_count


def _clusters(seed: int = 0, per_class: int = 200, dims: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 5, (3, dims))
    targets = np.repeat(np.arange(3), per_class)
    scale = np.diag(rng.uniform(0.5, 2.0, dims))
    return means[targets] + rng.normal(0, 1, (len(targets), dims)) @ scale, targets, means


def test_whitening_is_the_inverse_shrunk_covariance_of_the_class_centred_features() -> None:
    features, targets, _ = _clusters()
    whiten, centers = fit_statistics(features, targets, 3)
    means = np.stack([features[targets == k].mean(0) for k in range(3)])
    covariance = LedoitWolf(assume_centered=True).fit(features - means[targets]).covariance_
    np.testing.assert_allclose(whiten @ whiten.T, np.linalg.inv(covariance), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(centers, means @ whiten, atol=1e-9)


def _fitted_gate(features: np.ndarray, targets: np.ndarray) -> tuple[FeatureGate, np.ndarray]:
    """A float64 gate with the statistics of ``features``, and its whitening matrix."""
    whiten, centers = fit_statistics(features, targets, 3)
    gate = FeatureGate(features.shape[1], 3).double()
    gate.whiten.copy_(torch.from_numpy(whiten))
    gate.centers.copy_(torch.from_numpy(centers))
    return gate, whiten


def test_the_gate_module_is_the_mean_squared_mahalanobis_distance_to_the_nearest_class() -> None:
    features, targets, _ = _clusters()
    gate, whiten = _fitted_gate(features, targets)
    precision = whiten @ whiten.T
    means = np.stack([features[targets == k].mean(0) for k in range(3)])
    probe = features[:5] + 3.0
    expected = np.min([np.einsum("ij,jk,ik->i", probe - m, precision, probe - m) for m in means], axis=0) / 8
    np.testing.assert_allclose(gate(torch.from_numpy(probe)).numpy(), expected, rtol=1e-9)


def test_far_points_score_higher_than_training_points() -> None:
    features, targets, means = _clusters()
    gate, _ = _fitted_gate(features, targets)
    inside = gate(torch.from_numpy(features)).numpy()
    outside = gate(torch.from_numpy(means.mean(0) + np.full((20, 8), 25.0))).numpy()
    assert outside.min() > np.percentile(inside, 99.9)


@pytest.mark.parametrize(
    ("score", "turned", "threshold", "decision"),
    [
        (1.0, 5.0, 2.0, ACCEPTED),
        (3.0, 5.0, 2.0, NOT_A_CHEST_XRAY),
        (3.0, 1.0, 2.0, NOT_UPRIGHT),  # refused as it is, a chest X-ray once turned
        (1.5, 1.0, 2.0, NOT_UPRIGHT),  # passes as it is, but looks more like one turned
        (3.0, 2.5, 2.0, NOT_A_CHEST_XRAY),  # turned is better but still no chest X-ray
        (50.0, 50.0, None, ACCEPTED),  # a gate never fitted refuses nothing
    ],
)
def test_gate_rule(score: float, turned: float, threshold: float | None, decision: int) -> None:
    assert gate_decisions(np.array([score]), np.array([turned]), threshold)[0] == decision


def test_threshold_refuses_at_most_the_allowed_share_of_validation_images() -> None:
    rng = np.random.default_rng(1)
    scores = rng.gamma(4.0, 0.3, 500)
    turned = scores + rng.uniform(0.5, 3.0, 500)
    threshold = choose_threshold(scores, turned, 0.01)
    assert refused_count(scores, turned, threshold) == 5
    assert refused_count(scores, turned, float(np.sort(scores)[-7])) > 5  # one step stricter refuses more


def test_threshold_counts_orientation_refusals_too() -> None:
    scores = np.linspace(1.0, 2.0, 200)
    turned = scores + 1.0
    turned[:2] = 0.5  # two validation images look better turned: both count against the 1 %
    threshold = choose_threshold(scores, turned, 0.01)
    assert refused_count(scores, turned, threshold) <= 2
    assert threshold == scores.max()


def test_checkpoint_keeps_the_gate_in_fp32_with_its_policy(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_model("mobilenet_v3_small", "binary").eval()
    rng = np.random.default_rng(0)
    whiten, centers = rng.normal(0, 1, (576, 576)) * 1e-3 + np.eye(576), rng.normal(0, 1, (2, 576))
    install(net, whiten, centers)
    meta = ModelMetadata("t", "v", "mobilenet_v3_small", "binary", list(labels_for("binary")), 224, "xray-gray-224-v1")
    meta.gate = {"threshold": 2.5}
    path = save_checkpoint(net, meta, tmp_path / "m.safetensors", half=True)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta.gate_threshold == 2.5
    torch.testing.assert_close(loaded.gate.whiten, torch.from_numpy(whiten).float(), rtol=0, atol=0)
    torch.testing.assert_close(loaded.gate.centers, torch.from_numpy(centers).float(), rtol=0, atol=0)


def test_a_checkpoint_from_before_the_gate_loads_with_an_unfitted_gate(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    net = build_model("mobilenet_v3_small", "binary").eval()
    meta = ModelMetadata("t", "v", "mobilenet_v3_small", "binary", list(labels_for("binary")), 224, "xray-gray-224-v1")
    path = save_checkpoint(net, meta, tmp_path / "m.safetensors")
    state = {k: v for k, v in load_file(str(path)).items() if not k.startswith("gate.")}
    save_file(state, str(path), metadata={"xray_metadata": meta.to_json()})
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta.gate_threshold is None
    assert torch.equal(loaded.gate.whiten, torch.eye(576))


def test_the_served_graph_scores_turned_copies_in_the_same_pass() -> None:
    torch.manual_seed(0)
    net = build_model("mobilenet_v3_small", "binary").eval()
    x = torch.rand(3, 1, 224, 224)
    with torch.no_grad():
        _, _, score, turned = ExportWrapper(net)(x)
        each = [ExportWrapper(net)(torch.rot90(x, k, dims=(2, 3)))[2] for k in (1, 2, 3)]
    torch.testing.assert_close(score, net.gate(net.pooled(x)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(turned, torch.stack(each).min(dim=0).values, rtol=1e-4, atol=1e-5)


def test_a_per_source_threshold_keeps_every_source_within_its_share() -> None:
    rng = np.random.default_rng(2)
    common, unusual = rng.normal(1.0, 0.1, 400), rng.normal(1.6, 0.2, 60)  # one source sits further out
    scores = np.r_[common, unusual]
    sources = ["a"] * 400 + ["b"] * 60
    threshold = choose_threshold_per_source(scores, sources, 0.01)
    assert (unusual > threshold).sum() <= 1  # a source of 60 may lose one image, not more
    assert (common > threshold).sum() <= 4
    assert threshold > choose_threshold(scores, scores, 0.01)  # pooled, "b" would pay for "a"
