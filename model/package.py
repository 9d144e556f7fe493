"""``model.tar.gz`` in the SageMaker PyTorch layout, and its safe unpacking.

model.tar.gz
├── model.pt / model.onnx / compiled artifact
├── metadata.json
└── code/
    ├── inference.py        the SageMaker handlers (re-exported from model.inference)
    ├── requirements.txt
    └── model/              the torch-free runtime modules of this package
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Final

RUNTIME_MODULES: Final = (
    "__init__.py",
    "errors.py",
    "labels.py",
    "metadata.py",
    "preprocessing.py",
    "runtime.py",
    "inference.py",
)
INFERENCE_SHIM: Final = (
    '"""SageMaker entry point: the handlers live in the bundled ``model`` package."""\n\n'
    "from model.inference import input_fn, model_fn, output_fn, predict_fn\n\n"
    '__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]\n'
)
# Unversioned on purpose: the PyTorch inference containers already hold numpy and Pillow, so the
# install at start-up needs no network (the endpoint runs with network isolation). ONNX Runtime is
# only for the CPU path and is imported lazily.
REQUIREMENTS: Final = "numpy\npillow\n"
PACKAGE_DIR: Final = Path(__file__).resolve().parent


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def code_files() -> dict[str, bytes]:
    files = {f"code/model/{name}": (PACKAGE_DIR / name).read_bytes() for name in RUNTIME_MODULES}
    files["code/inference.py"] = INFERENCE_SHIM.encode()
    files["code/requirements.txt"] = REQUIREMENTS.encode()
    return files


def build_tarball(artifact_dir: Path, out_path: Path) -> Path:
    """Pack every file of ``artifact_dir`` at the root plus ``code/``; deterministic ordering."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out_path, "w:gz") as tar:
        for path in sorted(p for p in artifact_dir.iterdir() if p.is_file()):
            _add_bytes(tar, path.name, path.read_bytes())
        for name, data in sorted(code_files().items()):
            _add_bytes(tar, name, data)
    return out_path


def unpack(tar_path: Path, dest: Path) -> Path:
    """Extract with tarfile's ``data`` filter: no absolute paths, links out, or device files."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        tar.extractall(dest, filter="data")
    return dest
