"""All configuration, read from environment variables in one place; a missing one fails at start."""

from __future__ import annotations

import os
from dataclasses import dataclass

from functions.common.errors import ConfigurationError


def _required(name: str) -> str:
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
    idempotency_table: str
    max_object_bytes: int
    max_receive_count: int
    result_retention_days: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            results_table=_required("RESULTS_TABLE"),
            results_topic_arn=_required("RESULTS_TOPIC_ARN"),
            endpoint_name=_required("ENDPOINT_NAME"),
            upload_bucket=_required("UPLOAD_BUCKET"),
            upload_prefix=_required("UPLOAD_PREFIX"),
            idempotency_table=_required("IDEMPOTENCY_TABLE"),
            max_object_bytes=int(os.environ.get("MAX_OBJECT_BYTES", str(25 * 1024 * 1024))),
            max_receive_count=int(os.environ.get("MAX_RECEIVE_COUNT", "5")),
            result_retention_days=int(os.environ.get("RESULT_RETENTION_DAYS", "365")),
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

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            allowed_origin=_required("ALLOWED_ORIGIN"),
            readers_group=_required("READERS_GROUP"),
            admins_group=_required("ADMINS_GROUP"),
            page_token_secret_arn=_required("PAGE_TOKEN_SECRET_ARN"),
            sync_max_image_bytes=int(os.environ.get("SYNC_MAX_IMAGE_BYTES", str(4 * 1024 * 1024))),
            presign_expiry_seconds=int(os.environ.get("PRESIGN_EXPIRY_SECONDS", "300")),
        )
