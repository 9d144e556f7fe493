"""The pipeline's exceptions, in one tree (image validation errors come from ``model.core.errors``).

    PipelineError                                                          HTTP (``http_status``)
     ├── ConfigurationError           a required environment variable is missing (fails at start)
     ├── RejectedObjectError          the object can never be classified -> a `rejected` result   400
     │    ├── ObjectMissingError          deleted before it was read
     │    ├── ObjectTooLargeError         larger than MAX_OBJECT_BYTES
     │    ├── UploadReusedError           a later version of a user's upload key: a form posted again
     │    └── ImageRejectedError          wraps model.core.errors.InvalidImageError (reason kept)
     ├── TransientError               worth retrying (throttling, 5xx, timeouts) -> retry, then   503
     │    │                           DLQ + `failed`
     │    ├── EndpointUnavailableError
     │    ├── EndpointContractError       the endpoint's answer breaks the contract (alarmed)
     │    ├── DeadlineError               not enough of the invocation left to do it safely
     │    ├── DecodeTimeoutError          one object's decode ran past its wall-clock bound
     │    ├── ReportPushError             the PACS did not take a Structured Report: retried, then
     │    │                               the report dead-letter queue (alarmed)
     │    └── UnexpectedError             any error nobody foresaw, for one object
     ├── RequestRefusedError          the endpoint refused a whole request (4xx): split and retried per image
     ├── ResultNotFoundError          no such result, or one the caller may not read            404
     └── ApiError                     what only the API meets
          ├── UnauthorizedError                                                                 401
          ├── BadRequestError                                                                   400
          │    └── InvalidPageTokenError      a forged, foreign, expired or garbled next_token
          ├── BodyTooLargeError                                                                 413
          └── LimitExceededError          the caller's per-user limit; carries ``retry_after_s``    429

``http_status`` (the same attribute as in ``model.core.errors``) is the one mapping from an error to the
API's answer; ``functions.api.app`` reads it and nothing else. botocore's errors become these in
``functions.common.aws_errors``. ``reason`` on a RejectedObjectError is what the `rejected` result records.
"""

from __future__ import annotations

from typing import ClassVar

from model.core.contract import Gate
from model.core.errors import ImageTooLargeError


class PipelineError(Exception):
    http_status: ClassVar[int] = 500


class ConfigurationError(PipelineError):
    pass


class RejectedObjectError(PipelineError):
    http_status: ClassVar[int] = 400
    reason: str = "rejected"


class ObjectMissingError(RejectedObjectError):
    reason = "object_missing"


class ObjectTooLargeError(RejectedObjectError):
    # One meaning, one reason: more bytes than the path the image took accepts, whether the object's
    # size refuses it before it is read or the decoder's byte limit does after.
    reason = ImageTooLargeError.reason


class UploadReusedError(RejectedObjectError):
    reason = "upload_form_reused"


class ImageRejectedError(RejectedObjectError):
    """``gate`` is the model gate's score and threshold when the gate refused the image."""

    def __init__(self, reason: str, message: str, gate: Gate | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.gate = gate


class TransientError(PipelineError):
    http_status: ClassVar[int] = 503


class EndpointUnavailableError(TransientError):
    pass


class EndpointContractError(TransientError):
    pass


class DeadlineError(TransientError):
    pass


class DecodeTimeoutError(TransientError):
    pass


class ReportPushError(TransientError):
    pass


class UnexpectedError(TransientError):
    pass


class RequestRefusedError(PipelineError):
    pass


class ResultNotFoundError(PipelineError):
    http_status: ClassVar[int] = 404


class ApiError(PipelineError):
    pass


class UnauthorizedError(ApiError):
    http_status: ClassVar[int] = 401


class BadRequestError(ApiError):
    http_status: ClassVar[int] = 400


class BodyTooLargeError(ApiError):
    http_status: ClassVar[int] = 413


class InvalidPageTokenError(BadRequestError):
    pass


class LimitExceededError(ApiError):
    http_status: ClassVar[int] = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
