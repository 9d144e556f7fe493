"""One wire schema: the API's shapes (functions.api.schema) are the committed OpenAPI document's, and
they hold the model contract's fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from functions.api import schema
from functions.common.result import SHOWN_FIELDS
from model.core import contract
from tools import openapi

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_openapi_document_is_the_routes_own() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == openapi.render(), "stale: run `python -m tools.openapi`, then `npm run generate:api`"


def test_every_route_answers_with_a_named_shape() -> None:
    document = openapi.document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation["responses"]["200"].get("content", {})
            if path.endswith("/sr"):
                continue  # a DICOM file, not JSON
            assert "$ref" in content["application/json"]["schema"], f"{method.upper()} {path}"


@pytest.mark.parametrize(
    ("shape", "typed_dict"),
    [(schema.Gate, contract.Gate), (schema.Confidence, contract.Confidence), (schema.ModelInfo, contract.ModelInfo)],
)
def test_the_endpoint_shapes_have_the_model_contracts_fields(shape: type[BaseModel], typed_dict: Any) -> None:
    assert set(shape.model_fields) == set(typed_dict.__annotations__)


def test_a_stored_result_has_every_field_a_caller_may_be_shown() -> None:
    shown_by_ownership = {"scope", "file_name", "key", "version_id", "current", "explanation"}
    assert set(schema.StoredResult.model_fields) == set(SHOWN_FIELDS) | shown_by_ownership


def test_an_answer_keeps_an_explicit_null_and_leaves_out_what_was_not_set() -> None:
    body = schema.answer(
        schema.Classification, {"label": "covid", "probabilities": {"covid": 0.9}, "gate": None, "model": {}}
    )
    assert body == {"label": "covid", "probabilities": {"covid": 0.9}, "gate": None, "model": {}}


def test_a_field_the_schema_lacks_is_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        schema.answer(
            schema.UploadForm, {"url": "u", "fields": {}, "key": "k", "expires_in": 1, "max_bytes": 1, "x": 1}
        )
