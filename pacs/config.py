"""The receiver's settings, from environment variables, read in one place; a missing one fails at start.

==========================  ========================================================  ==============
variable                    meaning                                                   default
==========================  ========================================================  ==============
XRAY_DICOM_AE_TITLE         the receiver's own AE title                               XRAYCLASSIFY
XRAY_DICOM_PORT             the TCP port it listens on                                11112
XRAY_DICOM_HOST             the address it binds                                      0.0.0.0
XRAY_DICOM_ALLOWED_AES      calling AE titles allowed to send, comma-separated        (required)
XRAY_DICOM_ALLOWED_HOSTS    their addresses, comma-separated; empty: any              (empty)
XRAY_DICOM_SPOOL            the spool directory (a persistent disk)                   (required)
XRAY_UPLOAD_BUCKET          the upload bucket (template output UploadBucketName)      (required)
XRAY_UPLOAD_PREFIX          the template's UploadPrefix                               uploads/
XRAY_DICOM_TLS_CERT/_KEY    PEM certificate and key: TLS on the DICOM port            (none)
XRAY_DICOM_TLS_CA           PEM CA bundle: require client certificates signed by it   (none)
==========================  ========================================================  ==============
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from model.core.errors import InvalidSettingError

AE_TITLE: Final = re.compile(r"^[A-Za-z0-9_ .-]{1,16}$")


@dataclass(frozen=True)
class ReceiverConfig:
    ae_title: str
    port: int
    host: str
    allowed_aes: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    spool: Path
    bucket: str
    prefix: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ReceiverConfig:
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise InvalidSettingError(f"{name} is required (pacs.config)")
            return value

        def listed(name: str) -> tuple[str, ...]:
            return tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())

        allowed = listed("XRAY_DICOM_ALLOWED_AES")
        if not allowed:
            raise InvalidSettingError("XRAY_DICOM_ALLOWED_AES is required: the AE titles allowed to send (pacs.config)")
        ae_title = env.get("XRAY_DICOM_AE_TITLE", "XRAYCLASSIFY")
        for title in (ae_title, *allowed):
            if not AE_TITLE.match(title):
                raise InvalidSettingError(f"{title!r} is not an AE title (1-16 letters, digits, space, _ . -)")
        port = env.get("XRAY_DICOM_PORT", "11112")
        if not port.isdigit() or not 0 <= int(port) < 65536:
            raise InvalidSettingError(f"XRAY_DICOM_PORT={port!r} is not a port")
        prefix = env.get("XRAY_UPLOAD_PREFIX", "uploads/")
        if not prefix.endswith("/"):
            raise InvalidSettingError("XRAY_UPLOAD_PREFIX must end with '/' (the template's UploadPrefix)")
        cert, key, ca = (env.get(f"XRAY_DICOM_TLS_{part}") for part in ("CERT", "KEY", "CA"))
        if bool(cert) != bool(key):
            raise InvalidSettingError("XRAY_DICOM_TLS_CERT and XRAY_DICOM_TLS_KEY go together")
        return cls(
            ae_title=ae_title,
            port=int(port),
            host=env.get("XRAY_DICOM_HOST", "0.0.0.0"),  # noqa: S104 - a receiver for the hospital network
            allowed_aes=allowed,
            allowed_hosts=listed("XRAY_DICOM_ALLOWED_HOSTS"),
            spool=Path(required("XRAY_DICOM_SPOOL")),
            bucket=required("XRAY_UPLOAD_BUCKET"),
            prefix=prefix,
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            tls_ca=Path(ca) if ca else None,
        )
