"""The pipeline's exceptions, in one tree (image validation errors come from ``model.errors``).

    PipelineError
     ├── ConfigurationError           a required environment variable is missing (fails at start)
     ├── RejectedObjectError          the object can never be classified -> a `rejected` result
     │    ├── ObjectMissingError          deleted before it was read
     │    ├── ObjectTooLargeError         larger than MAX_OBJECT_BYTES
     │    └── ImageRejectedError          wraps model.errors.InvalidImageError (reason kept)
     ├── TransientError               worth retrying (throttling, 5xx, timeouts) -> retry, then DLQ + `failed`
     │    ├── EndpointUnavailableError
     │    ├── EndpointContractError       the endpoint's answer breaks the contract (alarmed)
     │    ├── DeadlineError               not enough of the invocation left to do it safely
     │    └── UnexpectedError             any error nobody foresaw, for one object
     ├── RequestRefusedError          the endpoint refused a whole request (4xx): split and retried per image
     └── ApiError                     maps to an HTTP status in functions.api (one place)
          ├── UnauthorizedError           401  no usable identity in the request
          ├── NotFoundError               404  also for a result the caller may not read
          ├── BadRequestError             400
          │    └── InvalidPageTokenError      a forged, foreign, expired or garbled next_token
          └── BodyTooLargeError           413

``reason`` on a RejectedObjectError is what the `rejected` result records.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PipelineError(Exception):
    pass


class ConfigurationError(PipelineError):
    pass


class RejectedObjectError(PipelineError):
    reason: str = "rejected"


class ObjectMissingError(RejectedObjectError):
    reason = "object_missing"


class ObjectTooLargeError(RejectedObjectError):
    reason = "too_large"


class ImageRejectedError(RejectedObjectError):
    """``gate`` is the model gate's score and threshold when the gate refused the image."""

    def __init__(self, reason: str, message: str, gate: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.gate = gate


class TransientError(PipelineError):
    pass


class EndpointUnavailableError(TransientError):
    pass


class EndpointContractError(TransientError):
    pass


class DeadlineError(TransientError):
    pass


class UnexpectedError(TransientError):
    pass


class RequestRefusedError(PipelineError):
    pass


class ApiError(PipelineError):
    status: ClassVar[int] = 500


class UnauthorizedError(ApiError):
    status: ClassVar[int] = 401


class NotFoundError(ApiError):
    status: ClassVar[int] = 404


class BadRequestError(ApiError):
    status: ClassVar[int] = 400


class BodyTooLargeError(ApiError):
    status: ClassVar[int] = 413


class InvalidPageTokenError(BadRequestError):
    pass
