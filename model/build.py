"""Build the served artifacts and ``model.tar.gz`` from a weights checkpoint.

python -m model.build --checkpoint model/default/model.safetensors --out build/model
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model.checkpoint import load_checkpoint
from model.export import FORMATS, export_model
from model.lung_network import load_lung_checkpoint
from model.package import build_tarball

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "default" / "model.safetensors"
DEFAULT_LUNGS = Path(__file__).resolve().parent / "default" / "lungs.safetensors"


def build(checkpoint: Path, out: Path, formats: tuple[str, ...] = FORMATS, lungs: Path | None = DEFAULT_LUNGS) -> Path:
    """Export ``checkpoint`` (with the lung-field network ``lungs``, unless None) into ``out/artifacts``
    and pack ``out/model.tar.gz``; return the tarball."""
    net, meta = load_checkpoint(checkpoint)
    artifacts = out / "artifacts"
    export_model(net, meta, artifacts, formats, load_lung_checkpoint(lungs) if lungs is not None else None)
    return build_tarball(artifacts, out / "model.tar.gz")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="weights (.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("build/model"), help="output directory")
    parser.add_argument(
        "--lungs", type=Path, default=DEFAULT_LUNGS, help="the lung-field network (.safetensors; training.lungs)"
    )
    parser.add_argument("--no-lungs", action="store_true", help="package without the lung-field network")
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help="comma-separated artifacts to export: torchscript,onnx"
    )
    return parser


def main(args: argparse.Namespace) -> None:
    lungs = None if args.no_lungs else args.lungs
    tarball = build(args.checkpoint, args.out, tuple(f for f in args.formats.split(",") if f), lungs)
    print(tarball)  # noqa: T201 - command-line output


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
