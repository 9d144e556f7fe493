"""Each result's DICOM Structured Report, pushed to the hospital's PACS by C-STORE (pynetdicom's SCU).

The outbox: the bucket announces every ``report.dcm`` the pipeline writes (an S3 event on the
explanation prefix, to the report outbox queue); the push function reads the report and sends it to
the PACS the template names (``PacsDestinationAETitle``, ``-Host``, ``-Port``). A push the PACS does not
acknowledge with success or a warning raises ``ReportPushError``: the message comes back after its
visibility timeout and, after its last receive, waits in the report dead-letter queue, alarmed, for a
redrive. The report's UIDs derive from the result id (``functions.common.structured_report``), so a
report pushed twice is one instance in the PACS.

Logs name the result id and the DIMSE status, never the patient, the UIDs or the bytes.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from typing import Final, Protocol

from functions.common.config import PushSettings
from functions.common.errors import ObjectMissingError, ReportPushError
from functions.common.s3_events import parse_sqs_body

logger = logging.getLogger(__name__)

REPORT_KEY: Final = re.compile(r"^(?P<result_id>[0-9a-f]{32})/report\.dcm$")
# What pynetdicom's status categories mean for a pushed report: stored, or not (retry).
STORED_CATEGORIES: Final = frozenset({"Success", "Warning"})


class ReportReader(Protocol):
    def report(self, result_id: str) -> bytes:
        """A stored result's SR; ObjectMissingError if it is gone, TransientError if unreadable now."""


class ReportSender(Protocol):
    def send(self, report: bytes) -> None:
        """Store one SR in the PACS; ReportPushError unless the PACS acknowledged it."""


def announced_reports(body: str, prefix: str) -> list[str]:
    """The result ids whose reports one outbox message announces; any other key is not a report."""
    ids = []
    for ref in parse_sqs_body(body):
        match = REPORT_KEY.match(ref.key.removeprefix(prefix)) if ref.key.startswith(prefix) else None
        if match is not None:
            ids.append(match["result_id"])
    return ids


@dataclass(frozen=True)
class ReportPusher:
    reports: ReportReader
    sender: ReportSender
    prefix: str

    def push(self, body: str) -> list[str]:
        """Push every report the message announces; the ids pushed. Raises on the first that fails,
        so the message comes back (a report already pushed is pushed again: the same instance)."""
        pushed = []
        for result_id in announced_reports(body, self.prefix):
            try:
                report = self.reports.report(result_id)
            except ObjectMissingError:
                # Its retention ended (or someone deleted it) before it could be pushed: nothing to send.
                logger.warning("report gone before it was pushed", extra={"result_id": result_id})
                continue
            self.sender.send(report)
            logger.info("report pushed to the PACS", extra={"result_id": result_id})
            pushed.append(result_id)
        return pushed


class CStoreSender:
    """One association per report: pushes are rare (one per DICOM image), and a PACS may close an idle
    association at any time."""

    def __init__(self, settings: PushSettings) -> None:
        self._settings = settings

    def _ae(self, sop_class: str, transfer_syntax: str) -> object:
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE

        ae = AE(ae_title=self._settings.calling_ae_title)
        timeout = self._settings.timeout_s
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
        # The report's own syntax first; the two uncompressed ones every PACS takes after it.
        syntaxes = list(dict.fromkeys([transfer_syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
        ae.add_requested_context(sop_class, syntaxes)
        return ae

    def send(self, report: bytes) -> None:
        from pydicom import dcmread
        from pynetdicom.status import code_to_category

        try:
            dataset = dcmread(io.BytesIO(report))
            sop_class, syntax = str(dataset.SOPClassUID), str(dataset.file_meta.TransferSyntaxUID)
        except (ValueError, AttributeError, OSError) as exc:
            raise ReportPushError(f"the stored report cannot be read: {type(exc).__name__}") from exc
        s = self._settings
        ae = self._ae(sop_class, syntax)
        assoc = ae.associate(s.host, s.port, ae_title=s.destination_ae_title)  # type: ignore[attr-defined]
        if not assoc.is_established:
            refused = "refused the association" if assoc.is_rejected else "could not be reached"
            raise ReportPushError(f"the PACS {refused}")
        try:
            status = assoc.send_c_store(dataset)
        finally:
            if assoc.is_established:
                assoc.release()
        if "Status" not in status:  # an empty answer: the association was aborted or timed out
            raise ReportPushError("the PACS did not answer the store (connection lost or timed out)")
        code = int(status.Status)
        if code_to_category(code) not in STORED_CATEGORIES:
            raise ReportPushError(f"the PACS did not store the report: status 0x{code:04X}")


def quiet_pynetdicom() -> None:
    """pynetdicom's standard handlers log identifiers (UIDs, patient data in dataset dumps): never here."""
    from pynetdicom import _config

    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
