"""All configuration, read from environment variables in one place; a missing one fails at start.

Every variable template.yaml sets is required here, so that no default in the code can drift from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from functions.common.errors import ConfigurationError


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required (set by template.yaml)")
    return value


@dataclass(frozen=True)
class Settings:
    results_table: str
    results_topic_arn: str
    endpoint_name: str
    upload_bucket: str
    upload_prefix: str
    explanation_prefix: str
    max_object_bytes: int
    max_receive_count: int
    result_retention_days: int
    endpoint_read_timeout_s: int
    notify_lease_s: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            results_table=required("RESULTS_TABLE"),
            results_topic_arn=required("RESULTS_TOPIC_ARN"),
            endpoint_name=required("ENDPOINT_NAME"),
            upload_bucket=required("UPLOAD_BUCKET"),
            upload_prefix=required("UPLOAD_PREFIX"),
            explanation_prefix=required("EXPLANATION_PREFIX"),
            max_object_bytes=int(required("MAX_OBJECT_BYTES")),
            max_receive_count=int(required("MAX_RECEIVE_COUNT")),
            result_retention_days=int(required("RESULT_RETENTION_DAYS")),
            # Tuning knobs the template does not set (the local stack's fault runs do).
            endpoint_read_timeout_s=int(os.environ.get("ENDPOINT_READ_TIMEOUT_S", "15")),
            notify_lease_s=int(os.environ.get("NOTIFY_LEASE_S", "60")),
        )


@dataclass(frozen=True)
class ApiSettings:
    """What only the API function needs, on top of ``Settings``."""

    allowed_origin: str
    readers_group: str
    admins_group: str
    page_token_secret_arn: str
    sync_max_image_bytes: int
    presign_expiry_seconds: int
    requests_per_user_per_minute: int
    uploads_per_user_per_hour: int

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            allowed_origin=required("ALLOWED_ORIGIN"),
            readers_group=required("READERS_GROUP"),
            admins_group=required("ADMINS_GROUP"),
            page_token_secret_arn=required("PAGE_TOKEN_SECRET_ARN"),
            sync_max_image_bytes=int(required("SYNC_MAX_IMAGE_BYTES")),
            presign_expiry_seconds=int(required("PRESIGN_EXPIRY_SECONDS")),
            requests_per_user_per_minute=int(required("REQUESTS_PER_USER_PER_MINUTE")),
            uploads_per_user_per_hour=int(required("UPLOADS_PER_USER_PER_HOUR")),
        )


@dataclass(frozen=True)
class PushSettings:
    """What only the report push function needs: the PACS that takes the Structured Reports (the
    template's PacsDestination* parameters) and the AE title this stack calls it as."""

    destination_ae_title: str
    host: str
    port: int
    calling_ae_title: str
    explanation_prefix: str
    timeout_s: int

    @classmethod
    def from_env(cls) -> PushSettings:
        port = required("PACS_PORT")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"PACS_PORT={port!r} is not a TCP port")
        titles = {name: required(name) for name in ("PACS_AE_TITLE", "PACS_CALLING_AE_TITLE")}
        for name, title in titles.items():
            if len(title) > 16 or not title.isascii() or "\\" in title:
                raise ConfigurationError(f"{name} is not an AE title (at most 16 ASCII characters, no backslash)")
        return cls(
            destination_ae_title=titles["PACS_AE_TITLE"],
            host=required("PACS_HOST"),
            port=int(port),
            calling_ae_title=titles["PACS_CALLING_AE_TITLE"],
            explanation_prefix=required("EXPLANATION_PREFIX"),
            # Association, DIMSE and network timeouts, each; the template's 30 s function timeout holds two.
            timeout_s=int(os.environ.get("PACS_TIMEOUT_S", "10")),
        )
