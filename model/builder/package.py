"""``model.tar.gz`` in the SageMaker PyTorch layout, and which of ``model/``'s floors ship where.

(Unpacking, which the endpoint does, is ``model.serving.serve.unpack``.)

model.tar.gz
├── model.pt / model.onnx / compiled artifact
├── metadata.json
└── code/
    ├── inference.py        the SageMaker handlers (re-exported from model.serving.inference)
    ├── requirements.txt
    ├── wheels/             optional: wheels the container installs offline (ONNX Runtime for the CPU path)
    └── model/              the package's core/ and serving/ floors (no torch)
"""

from __future__ import annotations

import argparse
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

Floor = Literal["core", "serving", "builder"]
# What each place runs, by floor: the Lambdas the torch-free core, the endpoint the core and the
# serving runtime, the Neo export job (a training job with torch) all three. A module's floor is its
# folder, so what ships is a rule, not a list; tests/unit/project/test_layers.py checks that no floor imports
# one above it, so each place holds every module its code can import.
LAMBDA_FLOORS: Final[tuple[Floor, ...]] = ("core",)
SERVED_FLOORS: Final[tuple[Floor, ...]] = ("core", "serving")
EXPORT_JOB_FLOORS: Final[tuple[Floor, ...]] = ("core", "serving", "builder")
INFERENCE_SHIM: Final = (
    '"""SageMaker entry point: the handlers live in the bundled ``model`` package."""\n\n'
    "from model.serving.inference import input_fn, model_fn, output_fn, predict_fn\n\n"
    '__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]\n'
)
# Unversioned on purpose: the PyTorch inference containers already hold numpy and Pillow, so the
# install at start-up needs no network (the endpoint runs with network isolation). ONNX Runtime is
# only for the CPU path and is imported lazily.
REQUIREMENTS: Final = "numpy\npillow\n"
# Where SageMaker unpacks model.tar.gz in the container, so where ``code/wheels/`` lands.
CONTAINER_WHEELS: Final = "/opt/ml/model/code/wheels"
MODEL_DIR: Final = Path(__file__).resolve().parents[1]


def requirements(wheels: Sequence[str] = ()) -> str:
    """``code/requirements.txt``: what the image already has, and the distributions of ``wheels``
    (file names under ``code/wheels/``) installed from the package itself: the endpoint has no network,
    so pip must not look for an index."""
    if not wheels:
        return REQUIREMENTS
    names = sorted({name.split("-", 1)[0].replace("_", "-") for name in wheels} - set(REQUIREMENTS.split()))
    return f"--no-index\n--find-links {CONTAINER_WHEELS}\n{REQUIREMENTS}" + "".join(f"{n}\n" for n in names)


def pack(members: dict[str, bytes]) -> bytes:
    """A gzipped tar of ``name -> bytes``, in sorted order with fixed modes (reproducible)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_members(tar_bytes: bytes) -> dict[str, bytes]:
    """Every regular file of a tar (any compression) as ``name -> bytes``."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def floor_files(floors: Sequence[Floor]) -> tuple[str, ...]:
    """The Python files of ``floors`` (paths under ``model/``), with the ``__init__.py`` of ``model``:
    what a place that runs those floors ships."""
    files = ["__init__.py"]
    for floor in floors:
        files += sorted(p.relative_to(MODEL_DIR).as_posix() for p in (MODEL_DIR / floor).rglob("*.py"))
    return tuple(files)


def copy_floors(floors: Sequence[Floor], dest: Path) -> None:
    """Copy ``floor_files(floors)`` into ``dest/model/`` (the Lambda build's ``make`` target runs this)."""
    for name in floor_files(floors):
        target = dest / "model" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((MODEL_DIR / name).read_bytes())


def code_files(wheels: Sequence[Path] = ()) -> dict[str, bytes]:
    """``code/``: the handlers, the runtime modules, requirements.txt and any ``wheels`` to install offline."""
    files = {f"code/model/{name}": (MODEL_DIR / name).read_bytes() for name in floor_files(SERVED_FLOORS)}
    files["code/inference.py"] = INFERENCE_SHIM.encode()
    files["code/requirements.txt"] = requirements([w.name for w in wheels]).encode()
    files.update({f"code/wheels/{w.name}": w.read_bytes() for w in wheels})
    return files


def build_tarball(artifact_dir: Path, out_path: Path, wheels: Sequence[Path] = ()) -> Path:
    """Pack every file of ``artifact_dir`` at the root plus ``code/`` (with ``wheels``); deterministic ordering."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    artifacts = {p.name: p.read_bytes() for p in artifact_dir.iterdir() if p.is_file()}
    out_path.write_bytes(pack({**artifacts, **code_files(wheels)}))
    return out_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Copy model/'s Lambda floors into a Lambda build directory.")
    parser.add_argument("dest", type=Path, help="the build directory (sam build's ARTIFACTS_DIR)")
    args = parser.parse_args(argv)
    copy_floors(LAMBDA_FLOORS, args.dest)


if __name__ == "__main__":
    main()
