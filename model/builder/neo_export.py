"""The TorchScript Neo compiles, written by the torch Neo supports: the entry of ``model.builder.deploy``'s export job.

    python -m model.builder.neo_export --checkpoint DIR/model.safetensors --lungs DIR/lungs.safetensors \\
        --model-dir OUT/model --data-dir OUT/data

Neo compiles PyTorch for cloud targets only from TorchScript written by one of the framework
versions it lists (2.0 the newest); ``make model`` writes it with the torch of this machine. So
``model.builder.deploy`` runs this module in a SageMaker training job on the PyTorch 2.0 framework image
(``DEFAULT_EXPORT_IMAGE`` there): the project's own export, on the project's own checkpoints, in the
torch Neo takes. It writes what Neo compiles, the classifier's ``model.pt`` alone, in ``--model-dir``
(SM_MODEL_DIR: the job's ``model.tar.gz``, Neo's input as it is) and what rides beside the compiled
model, ``lungs.pt`` and ``exported_with.json``, in ``--data-dir`` (SM_OUTPUT_DATA_DIR: the job's
``output.tar.gz``). The graph is the served one: ``ExportWrapper`` with the gate, the class activation
maps and, with a lung-field network, one pass per image.

Runs on the image's Python 3.10 and torch 2.0 (``tests/unit/model/test_neo_export.py`` checks the modules
it imports against Python 3.10 with vermin).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from model.core.contract import LUNGS_TORCHSCRIPT_FILE, TORCHSCRIPT_FILE

EXPORTED_WITH_FILE: Final = "exported_with.json"


def export(checkpoint: Path, lungs: Path | None, model_dir: Path, data_dir: Path) -> dict[str, str]:
    """Write ``model_dir/model.pt`` and ``data_dir/{lungs.pt, exported_with.json}``; return what
    wrote them (``{"torch": ...}``)."""
    import torch

    from model.builder.checkpoint import load_checkpoint
    from model.builder.export import export_model
    from model.builder.lung_network import load_lung_checkpoint

    net, meta = load_checkpoint(checkpoint)
    model_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lung = load_lung_checkpoint(lungs) if lungs is not None else None
        export_model(net, meta, Path(tmp), ("torchscript",), lung)
        shutil.copy(Path(tmp) / TORCHSCRIPT_FILE, model_dir / TORCHSCRIPT_FILE)
        if lung is not None:
            shutil.copy(Path(tmp) / LUNGS_TORCHSCRIPT_FILE, data_dir / LUNGS_TORCHSCRIPT_FILE)
    exported_with = {"torch": torch.__version__.split("+")[0]}
    (data_dir / EXPORTED_WITH_FILE).write_text(json.dumps(exported_with))
    return exported_with


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    channel = Path(os.environ.get("SM_CHANNEL_CHECKPOINT", "."))
    parser.add_argument("--checkpoint", type=Path, default=channel / "model.safetensors", help="(default: %(default)s)")
    parser.add_argument(
        "--lungs", type=Path, default=channel / "lungs.safetensors", help="(default: %(default)s, where it exists)"
    )
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("SM_MODEL_DIR", "build/neo/model")))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("SM_OUTPUT_DATA_DIR", "build/neo/data")))
    return parser


def main(args: argparse.Namespace) -> None:
    lungs = args.lungs if args.lungs.is_file() else None
    print(json.dumps(export(args.checkpoint, lungs, args.model_dir, args.data_dir)))  # noqa: T201


if __name__ == "__main__":
    main(get_args_parser().parse_args())
