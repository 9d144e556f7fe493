"""Each classified result's preview (the downsized image the model saw) and heatmap (the class
activation map of its label), as PNGs under a private prefix of the upload bucket; and, for an image
that came as DICOM, the result's Structured Report (``report.dcm``, functions.common.structured_report)
beside them.

They are written before the result, so a stored result never points at missing files, and they are
only ever handed out as short-lived presigned GET URLs to a caller who may read the result.
"""

from __future__ import annotations

from typing import Any, Final

from functions.common.aws_errors import S3_GET, aws_errors

NAMES: Final = ("preview", "heatmap")


class S3Explanations:
    """The bucket as the pipeline's ``ExplanationSink``, and the API's URL signer."""

    def __init__(self, s3: Any, bucket: str, prefix: str, expiry_s: int = 300) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._expiry_s = expiry_s

    def key(self, result_id: str, name: str) -> str:
        return f"{self._prefix}{result_id}/{name}.png"

    def put(self, result_id: str, preview: bytes, heatmap: bytes) -> None:
        with aws_errors("storing the explanation"):
            for name, data in zip(NAMES, (preview, heatmap), strict=True):
                self._s3.put_object(
                    Bucket=self._bucket, Key=self.key(result_id, name), Body=data, ContentType="image/png"
                )

    def report_key(self, result_id: str) -> str:
        return f"{self._prefix}{result_id}/report.dcm"

    def put_report(self, result_id: str, report: bytes) -> None:
        with aws_errors("storing the structured report"):
            self._s3.put_object(
                Bucket=self._bucket, Key=self.report_key(result_id), Body=report, ContentType="application/dicom"
            )

    def report(self, result_id: str) -> bytes:
        """A stored result's DICOM SR (the API hands it to a caller who may read the result, the push
        function to the PACS); ObjectMissingError once its retention has ended."""
        with aws_errors("reading the structured report", S3_GET):
            obj = self._s3.get_object(Bucket=self._bucket, Key=self.report_key(result_id))
            return bytes(obj["Body"].read())

    def urls(self, result_id: str) -> dict[str, Any]:
        """Presigned GET URLs of both PNGs (signing is local: no call to S3)."""
        urls: dict[str, Any] = {
            f"{name}_url": self._s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": self.key(result_id, name)},
                ExpiresIn=self._expiry_s,
            )
            for name in NAMES
        }
        urls["expires_in"] = self._expiry_s
        return urls
