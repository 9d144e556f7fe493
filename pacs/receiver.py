"""The DICOM receiver: a pynetdicom C-STORE SCP that spools each instance and answers success only then.

Who may send: the calling AE titles of ``XRAY_DICOM_ALLOWED_AES`` (any other is rejected at
association, by pynetdicom's ``require_calling_aet``) and, where ``XRAY_DICOM_ALLOWED_HOSTS`` is set,
only from those addresses (an instance from another is refused, status 0x0124). What it accepts: the
storage SOP classes of projection radiography (CR, DX for presentation and for processing), Secondary
Capture, and CT (so that a misrouted CT gets an answer, a refusal, rather than a failed transfer), in
every transfer syntax pynetdicom knows; the bytes are stored as they came (the pipeline's decoders
read them). Where: ``<UploadPrefix>dicom/<calling AE>/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` in the
upload bucket: bucket drops, the shared scope. Logs carry no identifiers: no names, UIDs or keys.
"""

from __future__ import annotations

import logging
import re
import ssl
from typing import Any, Final

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
    Verification,
)

from pacs.config import ReceiverConfig
from pacs.spool import Spool
from pacs.uploader import Uploader

logger = logging.getLogger(__name__)

# pynetdicom's standard event handlers log each message's identifiers (SOP Instance UIDs, a C-FIND's
# query, patient data in debug dumps): none of that may reach a log here.
_config.LOG_HANDLER_LEVEL = "none"
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

STORAGE_CLASSES: Final = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
    CTImageStorage,
)
SUCCESS: Final = 0x0000
NOT_AUTHORIZED: Final = 0x0124
OUT_OF_RESOURCES: Final = 0xA700
CANNOT_UNDERSTAND: Final = 0xC000
UID: Final = re.compile(r"^[0-9.]{1,64}$")
SAFE_AE: Final = re.compile(r"[^A-Za-z0-9_.-]")


def object_key(prefix: str, calling_ae: str, study_uid: str, sop_uid: str) -> str:
    """Where a received instance goes in the bucket. UIDs are digits and dots; anything else is not used
    as a key part."""
    study = study_uid if UID.match(study_uid) else "unknown-study"
    if not UID.match(sop_uid):
        raise ValueError("the instance has no valid SOP Instance UID")
    ae = SAFE_AE.sub("_", calling_ae.strip()) or "unknown-ae"
    return f"{prefix}dicom/{ae}/{study}/{sop_uid}.dcm"


class Receiver:
    def __init__(self, config: ReceiverConfig, spool: Spool, uploader: Uploader | None = None) -> None:
        self.config = config
        self.spool = spool
        self.uploader = uploader
        self.ae = AE(ae_title=config.ae_title)
        self.ae.require_calling_aet = list(config.allowed_aes)
        for sop_class in STORAGE_CLASSES:
            self.ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
        self.ae.add_supported_context(Verification)
        self._server: Any = None

    def _allowed_host(self, event: Any) -> bool:
        hosts = self.config.allowed_hosts
        return not hosts or event.assoc.requestor.address in hosts

    def handle_store(self, event: Any) -> int:
        if not self._allowed_host(event):
            logger.warning("instance refused: sender address not allowed")
            return NOT_AUTHORIZED
        try:
            ds = event.dataset
            key = object_key(
                self.config.prefix,
                event.assoc.requestor.ae_title,
                str(ds.get("StudyInstanceUID", "")),
                str(event.request.AffectedSOPInstanceUID or ""),
            )
            data = event.encoded_dataset()
        except (ValueError, AttributeError, KeyError) as exc:
            logger.warning("instance refused: it cannot be read", extra={"error": type(exc).__name__})
            return CANNOT_UNDERSTAND
        try:
            self.spool.put(key, data)
        except OSError as exc:
            # Not acknowledged: the sender keeps it and retries.
            logger.error("the spool could not store an instance", extra={"error": type(exc).__name__})
            return OUT_OF_RESOURCES
        logger.info("instance spooled", extra={"bytes": len(data)})
        if self.uploader is not None:
            self.uploader.notify()
        return SUCCESS

    def handle_echo(self, event: Any) -> int:
        return SUCCESS if self._allowed_host(event) else NOT_AUTHORIZED

    def ssl_context(self) -> ssl.SSLContext | None:
        c = self.config
        if c.tls_cert is None or c.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(c.tls_cert, c.tls_key)
        if c.tls_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(c.tls_ca)
        return context

    def start(self, block: bool = False) -> Any:
        handlers: list[Any] = [(evt.EVT_C_STORE, self.handle_store), (evt.EVT_C_ECHO, self.handle_echo)]
        self._server = self.ae.start_server(
            (self.config.host, self.config.port), block=block, evt_handlers=handlers, ssl_context=self.ssl_context()
        )
        return self._server

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
