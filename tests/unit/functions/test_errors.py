"""The two error trees: every class maps to an HTTP status the same way, and no two share a name."""

from __future__ import annotations

import inspect
from types import ModuleType

from functions.common import errors as pipeline_errors
from model.core import errors as model_errors


def _classes(module: ModuleType) -> list[type[Exception]]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]


def test_no_two_exception_classes_share_a_name() -> None:
    names = [c.__name__ for c in _classes(model_errors) + _classes(pipeline_errors)]
    assert len(names) == len(set(names))


def test_every_error_has_an_http_status() -> None:
    for cls in _classes(model_errors) + _classes(pipeline_errors):
        assert 400 <= cls.http_status < 600, cls  # type: ignore[attr-defined]


def test_every_error_class_is_drawn_in_its_modules_tree() -> None:
    for module in (model_errors, pipeline_errors):
        tree = module.__doc__ or ""
        assert [c.__name__ for c in _classes(module) if c.__name__ not in tree] == []
