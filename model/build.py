"""Build the served artifacts and ``model.tar.gz`` from a weights checkpoint.

python -m model.build --checkpoint model/default/model.safetensors --out build/model
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model.checkpoint import load_checkpoint
from model.export import FORMATS, export_model
from model.package import build_tarball

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default" / "model.safetensors"


def build(checkpoint: Path, out: Path, formats: tuple[str, ...] = FORMATS) -> Path:
    """Export ``checkpoint`` into ``out/artifacts`` and pack ``out/model.tar.gz``; return the tarball."""
    net, meta = load_checkpoint(checkpoint)
    artifacts = out / "artifacts"
    export_model(net, meta, artifacts, formats)
    return build_tarball(artifacts, out / "model.tar.gz")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="weights (.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("build/model"), help="output directory")
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help="comma-separated artifacts to export: torchscript,onnx"
    )
    return parser


def main(args: argparse.Namespace) -> None:
    tarball = build(args.checkpoint, args.out, tuple(f for f in args.formats.split(",") if f))
    print(tarball)  # noqa: T201 - command-line output


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
