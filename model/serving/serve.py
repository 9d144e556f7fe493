"""A local SageMaker endpoint: the runtime API and the container contract over one handler.

    python -m model.serving.serve --model build/model/model.tar.gz --port 8080

- ``POST /endpoints/{name}/invocations``: the SageMaker runtime API, so
  ``boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080").invoke_endpoint(...)``
  works unchanged, including ``ModelError`` (HTTP 424) for a 4xx/5xx from the model.
- ``GET /ping`` and ``POST /invocations``: the container contract SageMaker itself calls.

Served by waitress (a production WSGI server, multi-threaded); bodies over 6,291,456 bytes are
refused before they are read, as the real service does.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

from waitress.server import create_server

from model.core.contract import MAX_BODY_BYTES
from model.serving.inference import handle_invocation
from model.serving.runtime import Predictor

logger = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
RUNTIME_PATH: Final = re.compile(r"^/endpoints/(?P<name>[A-Za-z0-9\-]{1,63})/invocations$")
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    424: "Failed Dependency",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def unpack(tar_path: Path, dest: Path) -> Path:
    """Extract with tarfile's ``data`` filter: no absolute paths, links out, or device files."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "r:*") as tar:
        tar.extractall(dest, filter="data")
    return dest


def load_predictor(model_path: Path, workdir: Path | None = None) -> Predictor:
    """``model_path`` is a ``model.tar.gz`` or its unpacked directory."""
    if model_path.is_file():
        target = workdir or Path(tempfile.mkdtemp(prefix="xray-model-"))
        model_path = unpack(model_path, target)
    return Predictor.load(model_path)


def _respond(
    start: StartResponse, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    all_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])]
    start(f"{status} {_REASONS.get(status, 'Error')}", all_headers)
    return [body]


def _aws_error(start: StartResponse, status: int, error_type: str, message: str, **extra: Any) -> list[bytes]:
    body = json.dumps({"message": message, "Message": message, **extra}).encode()
    return _respond(start, status, body, [("x-amzn-ErrorType", f"{error_type}:")])


class EndpointApp:
    """The WSGI application. One instance serves every thread."""

    def __init__(self, predictor: Predictor, endpoint_name: str | None = None) -> None:
        self.predictor = predictor
        self.endpoint_name = endpoint_name

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/ping":
            return _respond(start, 200, b"{}")
        runtime = RUNTIME_PATH.match(path)
        if path != "/invocations" and runtime is None:
            return _aws_error(start, 404, "UnknownOperationException", f"no route {path}")
        if method != "POST":
            return _aws_error(start, 405, "UnknownOperationException", "use POST")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return _aws_error(start, 413, "ValidationError", f"Request body exceeds {MAX_BODY_BYTES} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        status, payload = handle_invocation(
            self.predictor,
            body,
            environ.get("CONTENT_TYPE"),
            environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
        )
        if runtime is None:
            return _respond(start, status, payload)
        return self._runtime_response(start, runtime.group("name"), status, payload)

    def _runtime_response(self, start: StartResponse, name: str, status: int, payload: bytes) -> list[bytes]:
        if self.endpoint_name is not None and name != self.endpoint_name:
            return _aws_error(start, 400, "ValidationError", f"Endpoint {name} not found.")
        if status == 200:
            return _respond(start, 200, payload, [("x-Amzn-Invoked-Production-Variant", "AllTraffic")])
        kind = "CLIENT" if status < 500 else "SERVER"
        return _aws_error(
            start,
            424,
            "ModelError",
            f'Received {kind.lower()} error ({status}) from primary with message "{payload.decode()}"',
            OriginalStatusCode=status,
            OriginalMessage=payload.decode(),
            ErrorCode=f"{kind}_ERROR_FROM_MODEL",
        )


def create_wsgi_server(app: Callable[..., Iterable[bytes]], host: str, port: int, threads: int) -> Any:
    """waitress, refusing a body over the service's limit before reading it (as SageMaker does)."""
    return create_server(app, host=host, port=port, threads=threads, max_request_body_size=MAX_BODY_BYTES + 1024)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz or its unpacked directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument("--threads", type=int, default=4, help="worker threads")
    parser.add_argument("--endpoint-name", default=None, help="answer only this endpoint name (default: any)")
    return parser


def main(args: argparse.Namespace) -> None:
    predictor = load_predictor(args.model)
    app = EndpointApp(predictor, args.endpoint_name)
    server = create_wsgi_server(app, args.host, args.port, args.threads)
    url = f"http://{args.host}:{server.effective_port}"  # type: ignore[union-attr]
    logger.info("serving %s (%s) on %s", predictor.meta.version, predictor.backend.name, url)
    print(f"local endpoint ready on {url}", flush=True)  # noqa: T201 - command-line output
    try:
        server.run()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(get_args_parser().parse_args())
