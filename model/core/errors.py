"""Every exception the model package raises, in one tree.

    XrayModelError
     ├── InvalidRequestError            (4xx: the caller can fix it)
     │    ├── UnsupportedContentTypeError   415
     │    ├── PayloadTooLargeError          413
     │    ├── MalformedRequestError         400  bad JSON / bad base64 / no instances
     │    └── InvalidImageError             400  carries a machine-readable ``reason``
     │         ├── EmptyImageError              reason "empty"
     │         ├── NotAnImageError              reason "not_an_image"
     │         ├── UnsupportedImageTypeError    reason "unsupported_type"
     │         ├── TruncatedImageError          reason "truncated"
     │         ├── DecompressionBombError       reason "decompression_bomb" (would cost far more memory or
     │         │                                time to decode than its size: pixels, scans, chunks)
     │         ├── ImageTooSmallError           reason "too_small"
     │         ├── ImageTooLargeError           reason "too_large"
     │         ├── DicomRefusedError            a DICOM that is not a single-frame CR/DX frontal chest image
     │         │    ├── UnsupportedTransferSyntaxError  reason "unsupported_transfer_syntax"
     │         │    ├── MultiFrameError                 reason "multi_frame"
     │         │    ├── UnsupportedPhotometricError     reason "unsupported_photometric"
     │         │    ├── UnsupportedModalityError        reason "unsupported_modality"
     │         │    ├── NotFrontalError                 reason "not_frontal"
     │         │    ├── NotChestError                   reason "not_chest"
     │         │    ├── NoPixelDataError                reason "no_pixel_data" (a DICOMDIR, a report)
     │         │    └── InvalidDicomError               reason "invalid_dicom" (a tag that cannot be read)
     │         └── GateRefusedError             the model's input gate; carries its ``score`` where it has one
     │              ├── NotAChestXrayError              reason "not_a_chest_xray" (the feature distance)
     │              ├── NotUprightError                 reason "not_upright" (a turned chest X-ray)
     │              └── NoLungFieldsError               reason "no_lung_fields" (no plausible pair of
     │                                                  lungs: model.core.lung_fields; carries ``failed``)
     └── ModelUnavailableError          (5xx: deployment problem)
          ├── ArtifactNotFoundError
          ├── PretrainedWeightsUnavailableError
          ├── NeoUnsupportedError           the artifact or framework version is outside what Neo compiles
          ├── CompilationFailedError        the Neo compilation job failed or did not finish in time
          ├── ExportJobFailedError          the job that writes Neo's TorchScript (model.builder.neo_export) failed
          └── InvalidSettingError           an environment setting (model.core.settings) has no meaning

``http_status`` on each class is the single mapping from error to HTTP status.
"""

from __future__ import annotations

from typing import ClassVar


class XrayModelError(Exception):
    http_status: ClassVar[int] = 500


class InvalidRequestError(XrayModelError):
    http_status: ClassVar[int] = 400


class UnsupportedContentTypeError(InvalidRequestError):
    http_status: ClassVar[int] = 415


class PayloadTooLargeError(InvalidRequestError):
    http_status: ClassVar[int] = 413


class MalformedRequestError(InvalidRequestError):
    pass


class InvalidImageError(InvalidRequestError):
    reason: ClassVar[str] = "invalid_image"


class EmptyImageError(InvalidImageError):
    reason: ClassVar[str] = "empty"


class NotAnImageError(InvalidImageError):
    reason: ClassVar[str] = "not_an_image"


class UnsupportedImageTypeError(InvalidImageError):
    reason: ClassVar[str] = "unsupported_type"


class TruncatedImageError(InvalidImageError):
    reason: ClassVar[str] = "truncated"


class DecompressionBombError(InvalidImageError):
    reason: ClassVar[str] = "decompression_bomb"


class ImageTooSmallError(InvalidImageError):
    reason: ClassVar[str] = "too_small"


class ImageTooLargeError(InvalidImageError):
    reason: ClassVar[str] = "too_large"


class DicomRefusedError(InvalidImageError):
    reason: ClassVar[str] = "dicom_refused"


class UnsupportedTransferSyntaxError(DicomRefusedError):
    reason: ClassVar[str] = "unsupported_transfer_syntax"


class MultiFrameError(DicomRefusedError):
    reason: ClassVar[str] = "multi_frame"


class UnsupportedPhotometricError(DicomRefusedError):
    reason: ClassVar[str] = "unsupported_photometric"


class UnsupportedModalityError(DicomRefusedError):
    reason: ClassVar[str] = "unsupported_modality"


class NotFrontalError(DicomRefusedError):
    reason: ClassVar[str] = "not_frontal"


class NotChestError(DicomRefusedError):
    reason: ClassVar[str] = "not_chest"


class NoPixelDataError(DicomRefusedError):
    reason: ClassVar[str] = "no_pixel_data"


class InvalidDicomError(DicomRefusedError):
    reason: ClassVar[str] = "invalid_dicom"


class GateRefusedError(InvalidImageError):
    """Decoded fine, but the gate refuses it: the model must not answer for it. ``score`` and
    ``threshold``: the feature distance and its limit, where that is what refused it (the lung-field
    checks refuse before the classifier runs, and have none)."""

    reason: ClassVar[str] = "gate_refused"

    def __init__(self, message: str, score: float | None = None, threshold: float | None = None) -> None:
        super().__init__(message)
        self.score = score
        self.threshold = threshold


class NotAChestXrayError(GateRefusedError):
    reason: ClassVar[str] = "not_a_chest_xray"


class NotUprightError(GateRefusedError):
    reason: ClassVar[str] = "not_upright"


class NoLungFieldsError(GateRefusedError):
    """The lung-field network found no plausible pair of lungs; ``failed``: the shape measures that
    were out of bounds (``model.core.lung_fields.FEATURES``)."""

    reason: ClassVar[str] = "no_lung_fields"

    def __init__(self, message: str, failed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failed = failed


class ModelUnavailableError(XrayModelError):
    http_status: ClassVar[int] = 503


class ArtifactNotFoundError(ModelUnavailableError):
    pass


class PretrainedWeightsUnavailableError(ModelUnavailableError):
    pass


class NeoUnsupportedError(ModelUnavailableError):
    """SageMaker Neo cannot compile this artifact (framework or exporting torch version)."""


class InvalidSettingError(ModelUnavailableError):
    pass


class CompilationFailedError(ModelUnavailableError):
    pass


class ExportJobFailedError(ModelUnavailableError):
    """The training job that writes the TorchScript Neo compiles (``model.builder.neo_export``) failed, was
    stopped or did not finish in time."""
