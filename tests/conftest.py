from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def invoke_local_endpoint(model_dir: Path, body: bytes, content_type: str = "image/png") -> dict[str, Any]:
    """One InvokeEndpoint call, with a real boto3 client, to the project's model server for ``model_dir``."""
    import boto3

    from local_stack.wsgi import BackgroundServer
    from model.serving.runtime import Predictor
    from model.serving.serve import EndpointApp

    with BackgroundServer(EndpointApp(Predictor.load(model_dir))) as endpoint:
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=endpoint.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        answer: dict[str, Any] = json.loads(
            runtime.invoke_endpoint(EndpointName="e", Body=body, ContentType=content_type)["Body"].read()
        )
    return answer


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, the same file `sam local invoke -e` would replay."""
    return json.loads((EVENTS / name).read_text())


def _tiny_model_dir(root: Path, task: str) -> Path:
    import torch

    from model.builder.architectures import build_model
    from model.builder.export import export_model
    from model.core.labels import labels_for
    from model.serving.metadata import ModelMetadata

    torch.manual_seed(0)
    net = build_model("mobilenet_v3_small", task).eval()
    meta = ModelMetadata(
        name="tiny-test",
        version=f"test-{task}",
        arch="mobilenet_v3_small",
        task=task,
        labels=list(labels_for(task)),
        input_size=224,
        preset="xray-gray-224-v1",
        temperature=1.5,
    )
    export_model(net, meta, root / "artifacts")
    return root / "artifacts"


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-init MobileNetV3-small exports (TorchScript + ONNX + metadata) for both tasks."""
    return {task: _tiny_model_dir(tmp_path_factory.mktemp(task), task) for task in ("binary", "multiclass")}


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_dirs: dict[str, Path]) -> Path:
    return tiny_model_dirs["multiclass"]


@pytest.fixture(scope="session")
def local_endpoint(tiny_model_dir: Path) -> Iterator[str]:
    """The local SageMaker endpoint serving the tiny multiclass model; yields its URL."""
    from local_stack.wsgi import BackgroundServer
    from model.serving.runtime import Predictor
    from model.serving.serve import EndpointApp

    with BackgroundServer(EndpointApp(Predictor.load(tiny_model_dir))) as endpoint:
        yield endpoint.url


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def results_table(aws_credentials: None) -> Iterator[Any]:
    """The template's ResultsTable (keys and indexes read from template.yaml) in in-process moto."""
    import boto3
    from moto import mock_aws

    from local_stack.template import Template

    props = Template().resources["ResultsTable"]["Properties"]
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(
            TableName="results",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        )
        yield table


@dataclass
class StoreScp:
    """A PACS stand-in (pynetdicom's C-STORE SCP, in process): what it stored, and the status it answers."""

    port: int
    ae_title: str = "TESTPACS"
    status: int = 0x0000
    received: list[Any] = field(default_factory=list)


@pytest.fixture
def store_scp() -> Iterator[StoreScp]:
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
    from pynetdicom.sop_class import ComprehensiveSRStorage  # type: ignore[attr-defined]

    ae = AE(ae_title="TESTPACS")
    ae.add_supported_context(ComprehensiveSRStorage, ALL_TRANSFER_SYNTAXES)
    ae.require_called_aet = True
    scp = StoreScp(port=0)

    def handle_store(event: Any) -> int:
        if scp.status == 0x0000:
            scp.received.append(event.dataset)
        return scp.status

    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    scp.port = int(server.server_address[1])
    try:
        yield scp
    finally:
        server.shutdown()
