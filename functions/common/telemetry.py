"""Logger and Tracer for the Lambdas, with nothing identifying in what they emit.

Object keys can carry patient identifiers (``uploads/ward3/MRN-00123456_smith.png``), so:

- X-Ray: only botocore is patched (``TRACED_MODULES``). Powertools patches every module the SDK
  supports by default, httplib among them, and X-Ray's httplib patch records the request path, which
  for S3 holds the key, whenever botocore sends through http.client (urllib3 1.26, which the Lambda
  runtime's botocore may use); with httplib unpatched, which urllib3 runs cannot change what is traced.
- X-Ray: the SDK's botocore patch records whitelisted request parameters of each AWS call, and for
  S3 that includes ``Key`` (and ``CopySource``, ``Prefix``). Those entries are removed from the
  SDK's whitelist table, so a traced ``GetObject`` keeps its operation, region, bucket, status and
  timing but not its key. The SDK records exceptions of AWS calls only for ``ClientError``, whose
  message holds no key.
- Logs: botocore's transport errors (read timeouts, connection errors) put the request URL, which
  holds the key, in their message; a traceback that reaches a log line would carry it. The
  formatter replaces every URL in a log record with ``<url>``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import LogRecord

URL: Final = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)
# Request parameters that name or select objects: never recorded in a trace.
IDENTIFYING_PARAMETERS: Final = frozenset({"Key", "CopySource", "Prefix", "StartAfter", "Delimiter"})
# What X-Ray instruments: AWS calls, as subsegments with the whitelisted (and stripped) parameters.
TRACED_MODULES: Final = ("botocore",)


def redact(value: Any) -> Any:
    """``value`` with every URL inside replaced, through dicts and lists."""
    if isinstance(value, str):
        return URL.sub("<url>", value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: LogRecord) -> str:
        return super().serialize(redact(log))


def strip_identifying_trace_parameters() -> None:
    """Remove key-like parameters from the X-Ray SDK's table of AWS call parameters to record."""
    from aws_xray_sdk.ext import boto_utils

    for service in boto_utils.whitelist["services"].values():
        for operation in service.get("operations", {}).values():
            for field in ("request_parameters", "response_parameters"):
                if field in operation:
                    operation[field] = [p for p in operation[field] if p not in IDENTIFYING_PARAMETERS]
            for field in ("request_descriptors", "response_descriptors"):
                for name in IDENTIFYING_PARAMETERS & set(operation.get(field, {})):
                    del operation[field][name]


def logger() -> Logger:
    return Logger(logger_formatter=RedactingFormatter())


def tracer() -> Tracer:
    strip_identifying_trace_parameters()
    return Tracer(patch_modules=TRACED_MODULES)
