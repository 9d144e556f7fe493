"""Leave out of the Lambdas' dependency layer what they never load.

    python3.11 tools/prune_layer.py LAYER_DIR/python

`make build-DependenciesLayer` (what `sam build` runs for the layer) calls it after pip. What goes:

- the copies a wheel makes of a shared library's symlinks: a wheel cannot hold a symlink, so
  python-gdcm ships ``libgdcmMSFF.so``, ``.so.3.0`` and ``.so.3.0.26`` as three identical 2.6 MB
  files. Of each set of byte-identical ``lib*.so*`` files in one folder only the name the dynamic
  loader asks for is kept: the one with the fewest version numbers after ``.so`` but at least one
  (the ``lib.so.MAJOR`` soname convention; GDCM's sonames are ``.so.3.0``, OpenJPEG's ``.so.7``);
- GDCM's command-line programs and CMake files;
- Pillow's AVIF codec (8 MB): uploads are PNG, JPEG or DICOM, sniffed by their first bytes, and
  Pillow skips a plugin whose module is missing;
- numpy's build-time parts (C headers, f2py, distutils), the packages' own tests and every type stub;
- the packages the python3.11 runtime itself brings (boto3 and its dependencies).

tests/integration/test_layer.py builds the layer this way and decodes every accepted format, DICOM
transfer syntaxes included, with nothing else on the path.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Final

# The Lambda python3.11 runtime's own packages: boto3, botocore, s3transfer and what they import.
RUNTIME_PROVIDED: Final = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
UNUSED: Final = (
    "_gdcm/gdcmopenjpeg-*",
    "PIL/_avif.*",
    "pillow.libs/libavif-*",
    "numpy/_core/include",
    "numpy/f2py",
    "numpy/distutils",
    "numpy/tests",
    "numpy/*/tests",
    "pydicom/data/test_files",
    "**/*.pyi",
)
# GDCM's programs (gdcmdump, gdcmconv, ...) sit beside its Python modules, without a suffix.
GDCM_PROGRAM: Final = re.compile(r"gdcm[a-z0-9]+")
SHARED_LIBRARY: Final = re.compile(r"lib.+\.so(\.\d+)*")


def runtime_site(target: Path) -> Path:
    """``target`` filled with links to the ``RUNTIME_PROVIDED`` packages of this environment: where a
    test or a benchmark stands in for the runtime beside the function and the layer."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    for name in RUNTIME_PROVIDED:
        if (site / name).exists():
            (target / name).symlink_to(site / name)
    return target


def _version_count(name: str) -> int:
    return name.split(".so", 1)[1].count(".")


def loader_name(names: list[str]) -> str:
    """Of the names of one library, the one the dynamic loader asks for (its soname)."""
    versioned = [n for n in names if _version_count(n) > 0]
    return min(versioned or names, key=lambda n: (_version_count(n), n))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def duplicate_libraries(root: Path) -> list[Path]:
    """Shared libraries that are byte-identical copies, in the same folder, of the one the loader asks for."""
    groups: dict[tuple[Path, int, str], list[str]] = defaultdict(list)
    for path in root.rglob("lib*.so*"):
        if path.is_file() and not path.is_symlink() and SHARED_LIBRARY.fullmatch(path.name):
            groups[(path.parent, path.stat().st_size, _digest(path))].append(path.name)
    extra = []
    for (folder, _, _), names in groups.items():
        keep = loader_name(names)
        extra += [folder / n for n in names if n != keep]
    return sorted(extra)


def unused(root: Path) -> list[Path]:
    """What the Lambdas never load (the module docstring's list, less the duplicate libraries)."""
    found = {p for pattern in UNUSED for p in root.glob(pattern)}
    found |= {root / name for name in RUNTIME_PROVIDED if (root / name).exists()}
    found |= {p for name in RUNTIME_PROVIDED for p in root.glob(f"{name.removesuffix('.py')}-*.dist-info")}
    gdcm = root / "_gdcm"
    if gdcm.is_dir():
        found |= {p for p in gdcm.iterdir() if p.is_file() and GDCM_PROGRAM.fullmatch(p.name)}
    return sorted(found)


def remove(paths: list[Path]) -> int:
    """Delete ``paths`` (files or folders); the bytes freed."""
    freed = 0
    for path in paths:
        if path.is_dir():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        elif path.exists():
            freed += path.stat().st_size
            path.unlink()
    return freed


def main(args: argparse.Namespace) -> None:
    root: Path = args.root
    freed = remove(unused(root)) + remove(duplicate_libraries(root))
    print(f"pruned {freed / 1e6:.1f} MB from {root}")  # noqa: T201 - command-line output


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the layer's python/ folder, as pip filled it")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
