"""The SageMaker endpoint, called with several images per request and under the 6 MB body limit."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from functions.common.errors import EndpointUnavailableError, ImageRejectedError

MAX_BODY_BYTES: Final = 6_291_456
# JSON framing per instance ({"b64": ""},) plus the envelope, kept well clear of the limit.
_ENVELOPE: Final = 256
_PER_INSTANCE: Final = 16
MAX_INSTANCES: Final = 16


@dataclass(frozen=True)
class Verdict:
    """The model's answer for one image: a prediction, or the reason it was refused."""

    label: str | None
    probabilities: dict[str, float]
    model: dict[str, Any]
    rejection: ImageRejectedError | None = None


def chunk_by_size(images: Sequence[bytes], limit: int = MAX_BODY_BYTES) -> list[list[int]]:
    """Indices of ``images`` grouped so each JSON request stays under ``limit`` bytes."""
    chunks: list[list[int]] = [[]]
    size = _ENVELOPE
    for index, image in enumerate(images):
        encoded = 4 * ((len(image) + 2) // 3) + _PER_INSTANCE
        if _ENVELOPE + encoded > limit:
            raise ValueError(f"image {index} alone exceeds the {limit}-byte request limit")
        if chunks[-1] and (size + encoded > limit or len(chunks[-1]) >= MAX_INSTANCES):
            chunks.append([])
            size = _ENVELOPE
        chunks[-1].append(index)
        size += encoded
    return [c for c in chunks if c]


class EndpointClient:
    def __init__(self, runtime: Any, endpoint_name: str) -> None:
        self._runtime = runtime
        self._endpoint_name = endpoint_name

    def _invoke(self, body: bytes) -> dict[str, Any]:
        try:
            response = self._runtime.invoke_endpoint(
                EndpointName=self._endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            original = exc.response.get("OriginalStatusCode")
            if error.get("Code") == "ModelError" and original is not None and int(str(original)) < 500:
                raise ImageRejectedError("model_rejected", f"the model refused the request ({original})") from exc
            # Everything else (throttling, 5xx from the model or the service, an endpoint not yet in
            # service) may pass: botocore already retried it, the queue retries it, then dead-letters.
            raise EndpointUnavailableError(f"endpoint call failed: {error.get('Code')}") from exc
        except (ConnectionError, ReadTimeoutError) as exc:
            raise EndpointUnavailableError("endpoint unreachable or timed out") from exc
        result: dict[str, Any] = json.loads(response["Body"].read())
        return result

    def classify(self, images: Sequence[bytes]) -> list[Verdict]:
        """One verdict per image, in order. Raises EndpointUnavailableError on transient failure."""
        verdicts: list[Verdict | None] = [None] * len(images)
        for chunk in chunk_by_size(images):
            body = json.dumps({"instances": [{"b64": base64.b64encode(images[i]).decode()} for i in chunk]})
            answer = self._invoke(body.encode())
            for index, prediction in zip(chunk, answer["predictions"], strict=True):
                if "error" in prediction:
                    error = prediction["error"]
                    rejection = ImageRejectedError(
                        str(error.get("reason", "invalid_image")), str(error.get("message", ""))
                    )
                    verdicts[index] = Verdict(None, {}, answer["model"], rejection)
                else:
                    verdicts[index] = Verdict(prediction["label"], prediction["probabilities"], answer["model"])
        return [v for v in verdicts if v is not None]
