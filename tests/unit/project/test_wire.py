"""What the web client agrees on with the server is generated from the server and kept fresh."""

from __future__ import annotations

from functions.common.reasons import rejection_reasons
from local_stack.template import Template
from tools.wire import OUT, render


def test_the_clients_generated_constants_are_up_to_date() -> None:
    assert OUT.read_text() == render(Template()), "stale: run `python -m tools.wire`"


def test_the_reasons_are_the_leaves_of_the_error_tree_and_the_apis_own() -> None:
    reasons = rejection_reasons()
    assert {"no_lung_fields", "not_frontal", "upload_form_reused", "object_missing", "rate_limited"} <= set(reasons)
    assert not {"invalid_image", "dicom_refused", "gate_refused", "rejected"} & set(reasons)  # abstract ones
