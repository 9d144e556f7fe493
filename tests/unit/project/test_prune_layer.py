"""tools/prune_layer.py: which copies of a shared library go, and which name stays."""

from __future__ import annotations

from pathlib import Path

from tools import prune_layer


def _write(folder: Path, content: bytes, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(content)


def test_of_identical_copies_only_the_soname_stays(tmp_path: Path) -> None:
    _write(tmp_path / "_gdcm", b"msff", "libgdcmMSFF.so", "libgdcmMSFF.so.3.0", "libgdcmMSFF.so.3.0.26")
    _write(tmp_path / "_gdcm", b"openjp2", "libgdcmopenjp2.so", "libgdcmopenjp2.so.2.3.0", "libgdcmopenjp2.so.7")
    prune_layer.remove(prune_layer.duplicate_libraries(tmp_path))
    assert sorted(p.name for p in (tmp_path / "_gdcm").iterdir()) == ["libgdcmMSFF.so.3.0", "libgdcmopenjp2.so.7"]


def test_libraries_that_differ_are_all_kept(tmp_path: Path) -> None:
    _write(tmp_path / "a", b"one", "libone.so.1")
    _write(tmp_path / "a", b"two", "libone.so.2")
    _write(tmp_path / "b", b"one", "libone.so.1")
    assert prune_layer.duplicate_libraries(tmp_path) == []


def test_the_runtimes_packages_and_gdcms_programs_go_but_its_modules_stay(tmp_path: Path) -> None:
    _write(tmp_path / "boto3", b"", "__init__.py")
    _write(tmp_path / "boto3-1.40.0.dist-info", b"", "METADATA")
    _write(tmp_path / "_gdcm", b"", "gdcm.py", "gdcmswig.py", "gdcmdump", "gdcmconv")
    prune_layer.remove(prune_layer.unused(tmp_path))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["gdcm.py", "gdcmswig.py"]
