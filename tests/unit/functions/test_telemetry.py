"""The Lambdas' logger and tracer leave object keys out of what they emit."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

from aws_lambda_powertools import Logger
from botocore.exceptions import ReadTimeoutError

from functions.common.errors import TransientError
from functions.common.telemetry import RedactingFormatter, redact, strip_identifying_trace_parameters
from tests.conftest import ROOT

URL = "https://bucket.s3.amazonaws.com/uploads/ward3/MRN-00123456_smith.png?versionId=3"


def test_a_chained_read_timeout_logged_with_its_traceback_shows_no_url() -> None:
    stream = io.StringIO()
    logger = Logger(
        service="redaction-test", logger_formatter=RedactingFormatter(), logger_handler=logging.StreamHandler(stream)
    )
    try:
        try:
            raise ReadTimeoutError(endpoint_url=URL)
        except ReadTimeoutError as exc:
            raise TransientError("S3 get_object failed: ReadTimeoutError") from exc
    except TransientError:
        logger.exception("batch failed")
    line = json.loads(stream.getvalue())
    assert "MRN-00123456" not in stream.getvalue()
    assert "<url>" in line["exception"]
    assert "ReadTimeoutError" in line["exception"]


def test_redaction_reaches_nested_values() -> None:
    assert redact({"a": [f"see {URL} now"], "n": 3}) == {"a": ["see <url> now"], "n": 3}


def test_traced_s3_calls_record_no_key() -> None:
    from aws_xray_sdk.ext import boto_utils

    strip_identifying_trace_parameters()
    operations = boto_utils.whitelist["services"]["s3"]["operations"]
    recorded = {name for op in operations.values() for name in op.get("request_parameters", [])}
    assert not recorded & {"Key", "CopySource", "Prefix"}
    assert "VersionId" in recorded  # the rest of the table is kept


def _patched_modules_in_a_lambda(*imports: str) -> list[str]:
    """What the functions' tracer patches, in a fresh process that looks like a Lambda with X-Ray on."""
    code = (
        "".join(f"import {name}\n" for name in imports)
        + "from functions.common import telemetry\ntelemetry.tracer()\n"
        + "from aws_xray_sdk.core import patcher\nimport json\nprint(json.dumps(sorted(patcher._PATCHED_MODULES)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env.update(LAMBDA_TASK_ROOT=str(ROOT), AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    patched: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return patched


def test_the_tracer_patches_botocore_alone() -> None:
    assert _patched_modules_in_a_lambda() == ["botocore"]


def test_http_client_stays_unpatched_whichever_http_libraries_are_loaded() -> None:
    # Loaded first, as the runtime's botocore and urllib3 1.26 would load them: still botocore alone.
    assert _patched_modules_in_a_lambda("http.client", "urllib3", "requests") == ["botocore"]
