"""The figures in docs/benchmarks.md, as tables rendered from the benchmarks' own JSON.

``python -m bench.inference ... --json bench/results/NAME.json`` writes a run (its command, date,
machine and rows); ``python -m bench.tables`` rewrites every ``<!-- bench:NAME -->`` section of
docs/benchmarks.md from ``bench/results/NAME.json``. ``tests/unit/project/test_benchmarks.py`` fails
while a section differs from its file, so no figure there is typed by hand.

    python -m bench.tables [--doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.DOTALL)
PATHS = {
    "eager": "eager PyTorch fp32",
    "torchscript": "TorchScript fp32",
    "torchscript-fp16": "TorchScript fp16",
    "onnx": "ONNX Runtime fp32",
    "onnx-int8": "ONNX Runtime int8",
}


def _provenance(run: dict[str, Any]) -> str:
    machine = run.get("machine", {})
    return (
        f"`{run.get('command', 'python -m bench.inference')}`, {run.get('date', 'undated')}, "
        f"{machine.get('device', '?')}, torch {machine.get('torch', '?')}, "
        f"fp32 matmul {machine.get('matmul_gflops', 0):.0f} GFLOP/s"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render(run: dict[str, Any]) -> str:
    """One run of ``bench.inference``: each (model, batch) with every path side by side."""
    rows = []
    for row in run["rows"]:
        name = PATHS.get(row["path"], row["path"]) + (" (served)" if row["served"] else "")
        rows.append(
            [
                str(row["arch"]),
                str(row["batch"]),
                name,
                f"{row['ms_per_img']:.1f}",
                f"{row['vs_eager']:.2f}x",
                f"{row['of_peak']:.0%}",
                f"{row['max_dlogit']:.1e}",
                f"{row['agreement']:.0%}",
            ]
        )
    header = ["model", "batch", "path", "ms per image", "vs eager", "of matmul rate", "max logit diff", "as eager"]
    text = f"{_provenance(run)}:\n\n{_table(header, rows)}\n"
    decoding = [
        [d["image"], f"{d['served_ms']:.1f}", f"{d['naive_rgb_ms']:.1f}", f"{d['naive_rgb_ms'] / d['served_ms']:.1f}x"]
        for d in run.get("preprocessing", [])
    ]
    if decoding:
        header = ["to the 224 px input", "served decoder ms", "naive RGB decode ms", "speed-up"]
        text += f"\n{_table(header, decoding)}\n"
    return text


def rewrite(doc: str, results: Path = RESULTS) -> str:
    """``doc`` with every bench section rendered from its JSON."""

    def section(match: re.Match[str]) -> str:
        run = json.loads((results / f"{match['name']}.json").read_text())
        return f"{match.group(1)}{render(run)}{match.group(4)}"

    return SECTION.sub(section, doc)


def main(args: argparse.Namespace) -> None:
    args.doc.write_text(rewrite(args.doc.read_text()))
    print(args.doc)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--doc", type=Path, default=DOC, help=f"default: {DOC.relative_to(ROOT)}")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
