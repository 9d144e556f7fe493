"""The web client's config from stack outputs, its local static site and its publish to S3 + CloudFront."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.client_site import StaticSite, client_config, publish

OUTPUTS = {"ApiUrl": "https://a.example/prod", "UserPoolId": "eu-west-1_x", "UserPoolClientId": "c", "Other": "-"}


def test_config_takes_only_what_the_client_needs() -> None:
    assert client_config(OUTPUTS, "eu-west-1") == {
        "apiUrl": "https://a.example/prod",
        "userPoolId": "eu-west-1_x",
        "userPoolClientId": "c",
        "region": "eu-west-1",
    }


def test_config_names_missing_outputs() -> None:
    with pytest.raises(ValueError, match="UserPoolClientId"):
        client_config({"ApiUrl": "x", "UserPoolId": "y"}, "eu-west-1")


def _get(site: StaticSite, path: str) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=dict(headers))

    body = b"".join(site({"PATH_INFO": path}, start))
    return seen["status"], seen["headers"], body


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<html>app</html>")
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("not served")
    return tmp_path


def test_the_site_serves_files_config_and_the_app_for_other_paths(dist: Path) -> None:
    site = StaticSite(dist, {"apiUrl": "http://127.0.0.1:1"})
    assert _get(site, "/assets/app.js")[2] == b"console.log(1)"
    assert json.loads(_get(site, "/config.json")[2]) == {"apiUrl": "http://127.0.0.1:1"}
    status, headers, body = _get(site, "/history/123")
    assert (status, body) == ("200 OK", b"<html>app</html>")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_site_never_serves_outside_its_folder(dist: Path) -> None:
    assert _get(StaticSite(dist, {}), "/../secret.txt")[2] == b"<html>app</html>"


@mock_aws
def test_publish_uploads_with_cache_rules_and_invalidates(dist: Path, aws_credentials: None) -> None:
    session = boto3.session.Session(region_name="us-east-1")
    s3 = session.client("s3")
    s3.create_bucket(Bucket="client")
    distribution = session.client("cloudfront").create_distribution(
        DistributionConfig={
            "CallerReference": "t",
            "Comment": "",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "o", "DomainName": "client.s3.amazonaws.com"}]},
            "DefaultCacheBehavior": {"TargetOriginId": "o", "ViewerProtocolPolicy": "redirect-to-https"},
        }
    )["Distribution"]["Id"]
    outputs = {**OUTPUTS, "ClientBucketName": "client", "ClientDistributionId": distribution, "ClientUrl": "https://d"}
    assert publish(session, outputs, dist) == 2
    assert s3.head_object(Bucket="client", Key="index.html")["CacheControl"] == "no-cache"
    asset = s3.head_object(Bucket="client", Key="assets/app.js")
    assert (asset["CacheControl"], asset["ContentType"]) == ("public, max-age=31536000, immutable", "text/javascript")
    invalidations = session.client("cloudfront").list_invalidations(DistributionId=distribution)
    assert invalidations["InvalidationList"]["Quantity"] == 1
