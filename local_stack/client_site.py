"""The web client's ``config.json``, from a stack's Outputs, and the static site that serves it locally.

    python -m local_stack.client_site config --stack-name xray-classifier    # client/dist/config.json
    python -m local_stack.client_site publish --stack-name xray-classifier   # AllowedOrigin=hosted

``config`` writes the config of a deployed stack (CloudFormation Outputs ApiUrl, UserPoolId,
UserPoolClientId and the region) into the built client, for any static host (Amplify Hosting, your
own). ``publish`` also uploads ``client/dist`` to the stack's ClientBucketName and invalidates its
CloudFront distribution. ``make local`` serves ``client/dist`` with the local stack's config at
``ClientUrl`` through ``StaticSite``.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import boto3

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
# The client reads nothing else from the outputs; the local stack adds its Cognito endpoint (moto).
CONFIG_KEYS: Final = {"ApiUrl": "apiUrl", "UserPoolId": "userPoolId", "UserPoolClientId": "userPoolClientId"}
SECURITY_HEADERS: Final = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]


# How the web client proves a password to the local stack's Cognito (moto); on AWS it uses SRP.
LOCAL_AUTH_FLOW: Final = "USER_PASSWORD_AUTH"


def client_config(outputs: Mapping[str, str], region: str, cognito_endpoint: str | None = None) -> dict[str, str]:
    missing = [k for k in CONFIG_KEYS if not outputs.get(k)]
    if missing:
        raise ValueError(f"the stack's outputs lack {', '.join(missing)}")
    config = {name: outputs[key] for key, name in CONFIG_KEYS.items()}
    config["region"] = region
    if cognito_endpoint:
        # moto: its user pool client allows USER_PASSWORD_AUTH; the deployed one allows SRP only.
        config["cognitoEndpoint"] = cognito_endpoint
        config["authFlow"] = LOCAL_AUTH_FLOW
    return config


class StaticSite:
    """A built single-page app (WSGI): its files, ``/config.json``, and ``index.html`` for any other path."""

    def __init__(self, root: Path, config: Mapping[str, str]) -> None:
        self.root = root.resolve()
        self.config = json.dumps(dict(config)).encode()

    def _file(self, path: str) -> Path | None:
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate.is_relative_to(self.root) and candidate.is_file():
            return candidate
        return None

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/config.json":
            body, kind = self.config, "application/json"
        else:
            found = self._file(path) or self.root / "index.html"
            body = found.read_bytes()
            kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        headers = [("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")]
        start("200 OK", headers + SECURITY_HEADERS)
        return [body]


def stack_outputs(session: Any, stack_name: str) -> dict[str, str]:
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def publish(session: Any, outputs: Mapping[str, str], dist: Path) -> int:
    """Upload every file of ``dist`` (index.html and config.json uncached, hashed assets for a year),
    then invalidate the distribution; returns the number of files."""
    if "ClientBucketName" not in outputs:
        raise SystemExit("the stack has no hosted client: deploy it with AllowedOrigin=hosted")
    s3 = session.client("s3")
    files = [p for p in sorted(dist.rglob("*")) if p.is_file()]
    for path in files:
        key = path.relative_to(dist).as_posix()
        immutable = key.startswith("assets/")
        s3.put_object(
            Bucket=outputs["ClientBucketName"],
            Key=key,
            Body=path.read_bytes(),
            ContentType=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            CacheControl="public, max-age=31536000, immutable" if immutable else "no-cache",
        )
    session.client("cloudfront").create_invalidation(
        DistributionId=outputs["ClientDistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
    )
    return len(files)


def main(args: argparse.Namespace) -> None:
    session = boto3.session.Session(region_name=args.region)
    outputs = stack_outputs(session, args.stack_name)
    config_path = args.dist / "config.json"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(client_config(outputs, session.region_name), indent=2) + "\n")
    print(config_path)  # noqa: T201 - command-line output
    if args.command == "publish":
        count = publish(session, outputs, args.dist)
        print(f"{count} files published; the client is at {outputs['ClientUrl']}")  # noqa: T201


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["config", "publish"], help="write config.json only, or also publish")
    parser.add_argument("--stack-name", required=True, help="the deployed stack")
    parser.add_argument("--region", default=None, help="its region (default: the AWS configuration's)")
    parser.add_argument(
        "--dist", type=Path, default=Path("client/dist"), help="the built client (default: %(default)s)"
    )
    main(parser.parse_args())
