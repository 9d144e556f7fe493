"""``OUT/report.html`` of ``training.adapt``: one self-contained page a clinician-scientist can read.

ROC and reliability curves before and after, the confusion matrices at the operating point, one row
per source where the site gave sources, the gate's refusals, and the caveats in plain words. Figures
are PNGs drawn with matplotlib and embedded as data URLs, so the page needs nothing beside it.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from training.metrics import reliability_bins

PARTS = (("before", "Before: the starting model"), ("after", "After: fine-tuned, out-of-fold"))


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _binary(predictions: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The covid and no_findings images' truth (1, 0), probabilities and decisions."""
    y = np.array(predictions["y"], dtype=np.int64)
    kept = (y == 0) | (y == 1)
    probs = np.array(predictions["probs"], dtype=np.float64)
    called = np.array(predictions["called"], dtype=bool)
    return y[kept], probs[kept], called[kept]


def roc_figure(predictions: dict[str, dict[str, Any]], report: dict[str, Any]) -> str:
    figure, axis = plt.subplots(figsize=(4.2, 4.2))
    for part, title in PARTS:
        y, probs, _ = _binary(predictions[part])
        if len(set(y.tolist())) == 2:
            fpr, tpr, _ = roc_curve(y, probs[:, 1])
            auc = report[part]["roc_auc"]
            axis.plot(fpr, tpr, label=f"{title.split(':')[0]} (AUC {auc:.2f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="1 - specificity", ylabel="COVID sensitivity", title="ROC, covid vs no_findings")
    axis.legend(loc="lower right")
    return _png(figure)


def reliability_figure(predictions: dict[str, dict[str, Any]]) -> str:
    figure, axis = plt.subplots(figsize=(4.2, 4.2))
    for part, title in PARTS:
        y, probs, _ = _binary(predictions[part])
        bins = reliability_bins(probs, y)
        axis.plot([b[3] for b in bins], [b[2] for b in bins], marker="o", label=title.split(":")[0])
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="confidence", ylabel="accuracy", title="Reliability (calibration)", xlim=(0, 1), ylim=(0, 1))
    axis.legend(loc="upper left")
    return _png(figure)


def confusion_table(predictions: dict[str, Any]) -> str:
    y, _, called = _binary(predictions)
    cells = {(truth, said): int(((y == truth) & (called == said)).sum()) for truth in (1, 0) for said in (True, False)}
    return (
        "<table><thead><tr><th scope='col'>truth \\ answer</th><th scope='col'>covid</th>"
        "<th scope='col'>not covid</th></tr></thead><tbody>"
        f"<tr><th scope='row'>covid</th><td>{cells[(1, True)]}</td><td>{cells[(1, False)]}</td></tr>"
        f"<tr><th scope='row'>no_findings</th><td>{cells[(0, True)]}</td><td>{cells[(0, False)]}</td></tr>"
        "</tbody></table>"
    )


def _figure(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" <small>({ci[0]:.3f} to {ci[1]:.3f})</small>" if ci else "")


def figures_table(report: dict[str, Any]) -> str:
    rows = []
    for name, shown in (
        ("roc_auc", "ROC AUC"),
        ("covid_sensitivity", "COVID sensitivity"),
        ("covid_specificity", "COVID specificity"),
    ):
        cells = "".join(f"<td>{_figure(report[p].get(name), report[p].get(f'{name}_ci'))}</td>" for p, _ in PARTS)
        rows.append(f"<tr><th scope='row'>{shown}</th>{cells}</tr>")
    ece = "".join(f"<td>{report[p]['ece']:.3f}</td>" for p, _ in PARTS)
    refused = "".join(f"<td>{report[p]['gate']['refused']} of {report[p]['n']}</td>" for p, _ in PARTS)
    rows += [f"<tr><th scope='row'>ECE</th>{ece}</tr>", f"<tr><th scope='row'>Gate refusals</th>{refused}</tr>"]
    head = "".join(f"<th scope='col'>{html.escape(t)}</th>" for _, t in PARTS)
    return f"<table><thead><tr><th scope='col'>figure</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def multiclass_table(report: dict[str, Any]) -> str:
    """The 3-class task's own figures over every image, pneumonia included, where the site has it."""
    if "multiclass" not in report["after"]:
        return ""
    rows = "".join(
        f"<tr><th scope='row'>{shown}</th>"
        + "".join(f"<td>{_figure(report[p]['multiclass'].get(name), None)}</td>" for p, _ in PARTS)
        + "</tr>"
        for name, shown in (
            ("roc_auc", "ROC AUC (macro, one vs rest)"),
            ("macro_f1", "macro F1"),
            ("accuracy", "accuracy"),
        )
    )
    head = "".join(f"<th scope='col'>{html.escape(t)}</th>" for _, t in PARTS)
    return (
        "<h2>Figures, all three labels</h2>"
        f"<table><thead><tr><th scope='col'>figure</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def sources_table(predictions: dict[str, dict[str, Any]], sources: dict[str, str]) -> str:
    """Per source: images, and the after-model's share of correct answers (a source of one class has
    no AUC)."""
    after = predictions["after"]
    y, _, called = _binary(after)
    paths = [p for p, v in zip(after["paths"], after["y"], strict=True) if v in (0, 1)]
    rows = []
    for source in sorted(set(sources.values())):
        mask = np.array([sources.get(p) == source for p in paths])
        correct = float((called[mask] == (y[mask] == 1)).mean()) if mask.any() else float("nan")
        labels = ", ".join(f"{int((y[mask] == v).sum())} {n}" for v, n in ((1, "covid"), (0, "no_findings")))
        rows.append(f"<tr><th scope='row'>{html.escape(source)}</th><td>{labels}</td><td>{correct:.3f}</td></tr>")
    return (
        "<table><thead><tr><th scope='col'>source</th><th scope='col'>images</th>"
        "<th scope='col'>correct after</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def heatmaps_section(heatmaps: list[dict[str, str]]) -> str:
    if not heatmaps:
        return ""
    figures = "".join(
        f"<figure><img src='{h['png']}' width='224' height='224' alt='Heatmap of a {html.escape(h['label'])} image, "
        f"answered {html.escape(h['answer'])}'><figcaption>{html.escape(h['label'])} image, answered "
        f"{html.escape(h['answer'])}</figcaption></figure>"
        for h in heatmaps
    )
    return (
        "<h2>Where the adapted model looks</h2><p>Red: the class-activation map of its answer, on a few site "
        "images it was fine-tuned on (they show where it looks, not how well it does).</p>" + figures
    )


def render(
    report: dict[str, Any],
    predictions: dict[str, dict[str, Any]],
    sources: dict[str, str],
    heatmaps: list[dict[str, str]] | None = None,
) -> str:
    site = html.escape(report["site"])
    met = report["after"]["meets_goal"]
    skipped = "".join(
        f"<li><code>{html.escape(s['path'])}</code>: {html.escape(s['reason'])}</li>" for s in report["images_skipped"]
    )
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in report["caveats"])
    confusion = "".join(
        f"<figure><figcaption>{html.escape(title)}</figcaption>{confusion_table(predictions[part])}</figure>"
        for part, title in PARTS
    )
    per_source = f"<h2>By source</h2>{sources_table(predictions, sources)}" if len(set(sources.values())) > 1 else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Adaptation to {site}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; }}
th, td {{ border: 1px solid #888; padding: 0.3rem 0.6rem; text-align: left; }}
.verdict {{ padding: 0.6rem 1rem; border-left: 6px solid {"#1b6e3a" if met else "#8a4b00"}; background: #f4f4f4; }}
figure {{ display: inline-block; margin: 0 1.5rem 1rem 0; vertical-align: top; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>Adapting the model to {site}</h1>
<p>Started from <code>{html.escape(report["start"]["version"])}</code>; {report["images_used"]} images of
{report["patients"]} patients; {report["folds"]}-fold cross-validation grouped by patient; strategy
<strong>{html.escape(report["strategy"])}</strong> ({html.escape(report["strategy_description"])}).</p>
<p class="verdict">The project's goal (ROC AUC at least 0.80, COVID sensitivity at least 0.85 at specificity at
least 0.80) is <strong>{"met" if met else "not met"}</strong> by the cross-validated figures: the adapted model's
answers say <code>confidence: {"normal" if met else "low"}</code>.</p>
<h2>Figures, covid vs no_findings</h2>
{figures_table(report)}
{multiclass_table(report)}
<p>In brackets: 95 % intervals that resample patients. "After" scores every image with a model fine-tuned
without it.</p>
<figure><img src="{roc_figure(predictions, report)}" alt="ROC curves before and after adaptation"></figure>
<figure><img src="{reliability_figure(predictions)}" alt="Reliability curves before and after adaptation"></figure>
<h2>Answers at the operating point</h2>
{confusion}
{per_source}
{heatmaps_section(heatmaps or [])}
<h2>What these figures can and cannot tell</h2>
<ul>{caveats}</ul>
<h2>Images left out</h2>
{f"<ul>{skipped}</ul>" if skipped else "<p>None.</p>"}
</body></html>
"""
