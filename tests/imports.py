"""What a module imports, read from its source: the oracle the packaging and layering tests hold the
shipping rules (``model.builder.package``'s floors) and the layers against."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parse(source: str, attempts: int = 3) -> ast.Module:
    """``ast.parse``, again where CPython 3.11 raised its spurious "AST constructor recursion depth
    mismatch" SystemError while another thread built an AST (python/cpython#106905): the source is fine."""
    for attempt in range(attempts):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def imported_names(source: str) -> set[str]:
    """Every dotted name ``source`` imports anywhere (top level or in a function); for ``from a import b``
    both ``a`` and ``a.b`` (``b`` may be a module or a name in ``a``)."""
    names: set[str] = set()
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def imported_modules(source: str, package: str) -> set[str]:
    """Module names under ``package`` (relative, dotted: ``core.errors``) that ``source`` imports."""
    return {name.removeprefix(f"{package}.") for name in imported_names(source) if name.startswith(f"{package}.")}


def module_file(package_dir: Path, module: str) -> Path | None:
    """The file of ``module`` (relative to ``package_dir``), or None where it is a name, not a module."""
    base = package_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def closure(sources: Iterable[Path], package: str = "model") -> set[str]:
    """The files of ``package`` (paths relative to it) that ``sources`` import, transitively, with the
    ``__init__.py`` of every package on the way."""
    package_dir = ROOT / package
    seen: set[Path] = set()
    todo = list(sources)
    while todo:
        path = todo.pop()
        for module in imported_modules(path.read_text(), package):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                found = module_file(package_dir, ".".join(parts[:depth]))
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    seen.add(package_dir / "__init__.py")
    return {p.relative_to(package_dir).as_posix() for p in seen if p.is_relative_to(package_dir)}


def top_level_imports(source: str) -> set[str]:
    """The first segment of every name ``source`` imports: the distributions it needs."""
    return {name.split(".")[0] for name in imported_names(source)}
