"""Build the served artifacts and ``model.tar.gz`` from a weights checkpoint.

python -m model.builder --checkpoint model/default/model.safetensors --out build/model

With the checkpoint's int8 recipe (``model.builder.int8_recipe``; the bundled one is
``model/default/int8.json``) the package also carries the int8 graph, quantized with the recipe's
ranges and plan, and serves it where the recipe's guard passed: no training data needed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model.builder.checkpoint import load_checkpoint
from model.builder.export import FORMATS, export_model
from model.builder.int8_recipe import Int8Recipe
from model.builder.lung_network import load_lung_checkpoint
from model.builder.package import build_tarball
from model.builder.quantize import apply_recipe
from model.core.contract import INT8_ONNX_FILE
from model.serving.metadata import ModelMetadata

logger = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "default" / "model.safetensors"
DEFAULT_LUNGS = Path(__file__).resolve().parents[1] / "default" / "lungs.safetensors"
DEFAULT_INT8 = Path(__file__).resolve().parents[1] / "default" / "int8.json"


def build(
    checkpoint: Path,
    out: Path,
    formats: tuple[str, ...] = FORMATS,
    lungs: Path | None = DEFAULT_LUNGS,
    int8: Path | None = None,
    wheels: Path | None = None,
) -> Path:
    """Export ``checkpoint`` (with the lung-field network ``lungs``, unless None) into ``out/artifacts``,
    quantize it with the int8 recipe ``int8`` where given, and pack ``out/model.tar.gz`` (with every
    wheel of the directory ``wheels`` in ``code/wheels/``); return the tarball."""
    net, meta = load_checkpoint(checkpoint)
    artifacts = out / "artifacts"
    export_model(net, meta, artifacts, formats, load_lung_checkpoint(lungs) if lungs is not None else None)
    (artifacts / INT8_ONNX_FILE).unlink(missing_ok=True)
    if int8 is not None and "onnx" in formats and apply_recipe(artifacts, Int8Recipe.read(int8)):
        logger.info("int8 graph from the recipe %s (served: %s)", int8.name, ModelMetadata.read(artifacts).int8_served)
    return build_tarball(artifacts, out / "model.tar.gz", sorted(wheels.glob("*.whl")) if wheels else ())


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="weights (.safetensors)")
    parser.add_argument("--out", type=Path, default=Path("build/model"), help="output directory")
    parser.add_argument(
        "--lungs", type=Path, default=DEFAULT_LUNGS, help="the lung-field network (.safetensors; training.lungs)"
    )
    parser.add_argument("--no-lungs", action="store_true", help="package without the lung-field network")
    parser.add_argument(
        "--int8",
        type=Path,
        default=None,
        help="the checkpoint's int8 recipe (model.builder.int8_recipe); default: model/default/int8.json with the "
        "bundled checkpoint, none with any other",
    )
    parser.add_argument("--no-int8", action="store_true", help="package the fp32 graph only")
    parser.add_argument(
        "--wheels",
        type=Path,
        default=None,
        help="a directory of wheels for the container to install offline, e.g. ONNX Runtime and its "
        "dependencies for a CPU endpoint (make model-cpu); default: none",
    )
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help="comma-separated artifacts to export: torchscript,onnx"
    )
    return parser


def main(args: argparse.Namespace) -> None:
    lungs = None if args.no_lungs else args.lungs
    int8 = args.int8
    if int8 is None and args.checkpoint.resolve() == DEFAULT_CHECKPOINT and DEFAULT_INT8.is_file():
        int8 = DEFAULT_INT8
    formats = tuple(f for f in args.formats.split(",") if f)
    tarball = build(args.checkpoint, args.out, formats, lungs, None if args.no_int8 else int8, args.wheels)
    print(tarball)  # noqa: T201 - command-line output


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
