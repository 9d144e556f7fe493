"""botocore's errors as the pipeline's, in one place (as httpx's ``map_exceptions``).

Each boundary names the codes that mean something there (``S3_GET``, ``ENDPOINT``); every other
``ClientError`` and every ``BotoCoreError`` (timeouts, connection errors) is a ``TransientError`` of
the boundary's kind: worth retrying, then dead-lettered. Messages name the call and the code, never
the request: a botocore message may hold the URL, and so the object key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.errors import (
    EndpointUnavailableError,
    ObjectMissingError,
    PipelineError,
    RequestRefusedError,
    TransientError,
)

Translate = Callable[[ClientError], PipelineError]

CONDITION_FAILED: Final = "ConditionalCheckFailedException"


def code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def condition_failed(exc: ClientError) -> bool:
    """A DynamoDB write whose condition did not hold: an answer, not a failure."""
    return code_of(exc) == CONDITION_FAILED


def _object_missing(exc: ClientError) -> PipelineError:
    return ObjectMissingError("the object was deleted before it was classified")


def _model_error(exc: ClientError) -> PipelineError:
    # The container's own status: a 4xx refuses the request (split and retried per image by the
    # client); a 5xx from the model may pass like any other transient failure.
    original = exc.response.get("OriginalStatusCode")
    if original is not None and int(str(original)) < 500:
        return RequestRefusedError(f"the model refused the request ({original})")
    return EndpointUnavailableError(f"endpoint call failed: {code_of(exc)}")


S3_GET: Final[Mapping[str, Translate]] = dict.fromkeys(
    ("NoSuchKey", "NoSuchVersion", "404", "NotFound"), _object_missing
)
ENDPOINT: Final[Mapping[str, Translate]] = {"ModelError": _model_error}


@contextmanager
def aws_errors(
    call: str, codes: Mapping[str, Translate] | None = None, otherwise: type[TransientError] = TransientError
) -> Iterator[None]:
    """Inside, a ``ClientError`` whose code is in ``codes`` becomes what its entry makes; any other
    botocore error becomes ``otherwise``."""
    try:
        yield
    except ClientError as exc:
        translate = (codes or {}).get(code_of(exc))
        raise (translate(exc) if translate else otherwise(f"{call} failed: {code_of(exc)}")) from exc
    except BotoCoreError as exc:
        raise otherwise(f"{call} failed: {type(exc).__name__}") from exc
