"""``model.tar.gz`` in the SageMaker PyTorch layout, and its safe unpacking.

model.tar.gz
├── model.pt / model.onnx / compiled artifact
├── metadata.json
└── code/
    ├── inference.py        the SageMaker handlers (re-exported from model.inference)
    ├── requirements.txt
    ├── wheels/             optional: wheels the container installs offline (ONNX Runtime for the CPU path)
    └── model/              the torch-free runtime modules of this package
"""

from __future__ import annotations

import ast
import io
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

# The served code's root: ``code/inference.py`` re-exports its handlers, and every module of this
# package it imports, at any depth and however lazily, ships beside it (``runtime_modules``).
SERVED_ROOT: Final = "inference.py"
INFERENCE_SHIM: Final = (
    '"""SageMaker entry point: the handlers live in the bundled ``model`` package."""\n\n'
    "from model.inference import input_fn, model_fn, output_fn, predict_fn\n\n"
    '__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]\n'
)
# Unversioned on purpose: the PyTorch inference containers already hold numpy and Pillow, so the
# install at start-up needs no network (the endpoint runs with network isolation). ONNX Runtime is
# only for the CPU path and is imported lazily.
REQUIREMENTS: Final = "numpy\npillow\n"
# Where SageMaker unpacks model.tar.gz in the container, so where ``code/wheels/`` lands.
CONTAINER_WHEELS: Final = "/opt/ml/model/code/wheels"
PACKAGE_DIR: Final = Path(__file__).resolve().parent


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


def _parse(source: str, attempts: int = 3) -> ast.Module:
    """``ast.parse``, again where CPython 3.11 raised its spurious "AST constructor recursion depth
    mismatch" SystemError while another thread built an AST (python/cpython#106905; seen here on 3.11.7
    in the test run, with the local stack's pollers importing handlers): the source itself is fine."""
    for attempt in range(attempts):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def imported_modules(source: str, package: str = "model") -> set[str]:
    """File names of ``package``'s modules that ``source`` imports anywhere (top level or in a function)."""
    names: set[str] = set()
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module == package:
                names.update(f"{alias.name}.py" for alias in node.names)
            elif node.module.startswith(f"{package}."):
                names.add(f"{node.module.split('.')[1]}.py")
        elif isinstance(node, ast.Import):
            names.update(f"{a.name.split('.')[1]}.py" for a in node.names if a.name.startswith(f"{package}."))
    return names


def module_closure(roots: Iterable[str], directory: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """``roots`` and every module of this package they import, transitively, with ``__init__.py``."""
    seen: set[str] = {"__init__.py"}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or not (directory / name).is_file():
            continue
        seen.add(name)
        todo.extend(imported_modules((directory / name).read_text()))
    return tuple(sorted(seen))


def runtime_modules() -> tuple[str, ...]:
    """The modules ``code/model/`` holds: what the SageMaker handlers import."""
    return module_closure([SERVED_ROOT])


def code_files(wheels: Sequence[Path] = ()) -> dict[str, bytes]:
    """``code/``: the handlers, the runtime modules, requirements.txt and any ``wheels`` to install offline."""
    files = {f"code/model/{name}": (PACKAGE_DIR / name).read_bytes() for name in runtime_modules()}
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


def unpack(tar_path: Path, dest: Path) -> Path:
    """Extract with tarfile's ``data`` filter: no absolute paths, links out, or device files."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        tar.extractall(dest, filter="data")
    return dest
