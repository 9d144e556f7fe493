"""The decision policy: what an answer says, given the served graph's calibrated outputs.

The gate's rule (accepted, not upright, not a chest X-ray), the label to answer at the operating point,
and how far an answer can be trusted. Plain NumPy: no backend, no image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model.core import contract
from model.serving.metadata import ModelMetadata

FloatArray = npt.NDArray[np.float32]
LOW_CONFIDENCE: Final[contract.ConfidenceLevel] = "low"
# p(covid) this close to the operating point (or the two most probable labels this close) is borderline.
BORDERLINE_MARGIN: Final = 0.15

ACCEPTED: Final = 0
NOT_UPRIGHT: Final = 1
NOT_A_CHEST_XRAY: Final = 2


def gate_decisions(
    scores: npt.NDArray[np.floating[Any]],
    turned: npt.NDArray[np.floating[Any]],
    threshold: float | None,
    upright_threshold: float | None = None,
) -> npt.NDArray[np.int8]:
    """The gate's rule, per image: ACCEPTED, NOT_UPRIGHT or NOT_A_CHEST_XRAY.

    - An image under ``threshold`` whose best turned copy scores lower still, and under ``threshold``,
      is a chest X-ray on its side or upside down: it is never classified as it is.
    - An image over ``threshold`` is refused. It is called a turned chest X-ray only if a turned copy
      scores lower and under ``upright_threshold`` (a typical chest X-ray's score, below
      ``threshold``): otherwise it is no chest X-ray at all.
    Without a threshold (a gate never fitted) everything is accepted.
    """
    decisions = np.full(len(scores), ACCEPTED, np.int8)
    if threshold is None:
        return decisions
    upright = threshold if upright_threshold is None else upright_threshold
    over = scores > threshold
    better_turned = turned < scores
    decisions[over] = NOT_A_CHEST_XRAY
    decisions[better_turned & ((~over & (turned <= threshold)) | (over & (turned <= upright)))] = NOT_UPRIGHT
    return decisions


def decide(probs: FloatArray, labels: Sequence[str], covid_threshold: float | None) -> int:
    """The index of the label to answer: covid at p(covid) >= the operating point's threshold,
    otherwise the most probable other label (without an operating point: the most probable label)."""
    if covid_threshold is None or "covid" not in labels:
        return int(np.argmax(probs))
    covid = list(labels).index("covid")
    if probs[covid] >= covid_threshold:
        return covid
    others = np.where(np.arange(len(probs)) == covid, -np.inf, probs)
    return int(np.argmax(others))


def confidence(probs: FloatArray, labels: Sequence[str], meta: ModelMetadata) -> contract.Confidence:
    """``{"level": "low" | "normal", "reasons": [...]}`` for one answer.

    Low when the model has not shown that it meets the project's goal, neither on hospitals it never
    saw nor, by cross-validation, on the site it was adapted to (``not_validated_on_unseen_sources``:
    its probabilities then say little about a new site's images), or when the answer is close to the
    other one (``borderline``: p(covid) within ``BORDERLINE_MARGIN`` of the operating point, or,
    without one, the two most probable labels that close). A site-validated model's answers name the
    site (``validated_on``).
    """
    validated = meta.validated_on_unseen_sources or meta.validated_on_site
    reasons = [] if validated else ["not_validated_on_unseen_sources"]
    threshold = meta.covid_threshold
    if threshold is not None and "covid" in labels:
        margin = abs(float(probs[list(labels).index("covid")]) - threshold)
    else:
        first, second = np.sort(probs)[::-1][:2]
        margin = float(first - second)
    if margin < BORDERLINE_MARGIN:
        reasons.append("borderline")
    answer: contract.Confidence = {"level": LOW_CONFIDENCE if reasons else "normal", "reasons": reasons}
    if meta.validated_on_site:
        answer["validated_on"] = str(meta.site_validation.get("site", ""))
    return answer


def gate_dict(score: float, threshold: float | None) -> contract.Gate:
    """The gate's part of an answer: its score and the threshold over which it refuses."""
    return {"score": round(float(score), 4), "threshold": None if threshold is None else round(threshold, 4)}


def softmax(logits: FloatArray, temperature: float) -> FloatArray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs
