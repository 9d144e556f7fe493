"""Every machine-readable reason a rejected result or a refused API call can carry, in one list.

The web client's plain words (``client/src/lib/reasons.ts``) are checked against it: ``tools.wire``
writes it to ``client/src/generated/wire.ts`` and a client test fails on a reason without words.
"""

from __future__ import annotations

from typing import Final, TypeVar

from functions.common import errors
from model.core import errors as image_errors

# Reasons the API's error mapping (functions/api/app.py) and the endpoint client give.
MODEL_REJECTED: Final = "model_rejected"
RATE_LIMITED: Final = "rate_limited"
DECODE_TIMEOUT: Final = "decode_timeout"
ENDPOINT_UNAVAILABLE: Final = "endpoint_unavailable"

E = TypeVar("E", bound=Exception)


def _leaves(base: type[E]) -> list[type[E]]:
    children: list[type[E]] = base.__subclasses__()
    return [leaf for child in children for leaf in _leaves(child)] if children else [base]


def rejection_reasons() -> tuple[str, ...]:
    """What a ``rejected`` result or a 400 answer says, sorted: each image check, each object check,
    the model's refusal; then the API's own refusals."""
    image = {str(leaf.reason) for leaf in _leaves(image_errors.InvalidImageError)}
    objects = {
        str(leaf.reason) for leaf in _leaves(errors.RejectedObjectError) if leaf is not errors.ImageRejectedError
    }
    return tuple(sorted(image | objects | {MODEL_REJECTED, RATE_LIMITED, DECODE_TIMEOUT, ENDPOINT_UNAVAILABLE}))
