"""The DICOM network on the local stack, against a real PACS (Debian's Orthanc) and dcmtk's storescu:
studies in through the receiver, classified, and each answer back in the PACS as a Structured Report
in the image's study; and the faults: a receiver killed between acknowledging and uploading, and a
network cut in the middle of a send, each way, lose nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from local_stack.stack import DICOM_AE_TITLE, LocalDeployment
from local_stack.template import StackContext
from tests import dicoms
from tests.network_cut import CuttingProxy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (.ci/run installs it)"
    ),
]

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@dataclass(frozen=True)
class Orthanc:
    url: str  # its REST API
    dicom_port: int


@pytest.fixture(scope="module")
def receiver_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def orthanc(receiver_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc | None]:
    """A real PACS (Debian's Orthanc) on local ports, with the receiver as its modality ``xray``; None
    where Orthanc is not installed (the tests that need it skip)."""
    if shutil.which("Orthanc") is None:
        yield None
        return
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "test-pacs",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
        "DicomModalities": {"xray": [DICOM_AE_TITLE, "127.0.0.1", receiver_port]},
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        ["Orthanc", str(root / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/system", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        yield Orthanc(url, dicom_port)
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def to_orthanc(orthanc: Orthanc | None) -> Iterator[CuttingProxy | None]:
    """The network between the stack's report push and Orthanc, which a test may cut."""
    if orthanc is None:
        yield None
        return
    proxy = CuttingProxy(orthanc.dicom_port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def pacs_stack(bundled_model: Path, receiver_port: int, to_orthanc: CuttingProxy | None) -> Iterator[LocalDeployment]:
    context = StackContext(stack_name=f"xray-pacs-{uuid.uuid4().hex[:6]}")
    destination = f"ORTHANC@127.0.0.1:{to_orthanc.port}" if to_orthanc else None
    with LocalDeployment(
        bundled_model,
        batching_window_s=0.3,
        retry_delay_s=0,
        context=context,
        dicom_port=receiver_port,
        pacs_destination=destination,
    ) as s:
        yield s


@pytest.fixture
def pacs(orthanc: Orthanc | None, pacs_stack: LocalDeployment) -> Orthanc:
    if orthanc is None:
        pytest.skip("Orthanc is not installed (.ci/run installs Debian's orthanc)")
    return orthanc


def _storescu(port: int, files: list[Path], calling: str = "STORESCU") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["storescu", "-aet", calling, "-aec", DICOM_AE_TITLE, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _study(tmp_path: Path, **tags: str) -> tuple[Path, str, str]:
    pixels = np.asarray(Image.open(SAMPLES / "covid-2.png").convert("L"))
    study, sop = "1.2.826.0.1.3680043.8.498." + str(uuid.uuid4().int)[:20], ""
    data = dicoms.dicom(pixels, StudyInstanceUID=study, SeriesInstanceUID=study + ".1", **tags)
    path = tmp_path / f"{uuid.uuid4().hex}.dcm"
    path.write_bytes(data)
    import pydicom

    sop = str(pydicom.dcmread(path).SOPInstanceUID)
    return path, study, sop


def test_a_study_sent_with_storescu_is_classified(pacs_stack: LocalDeployment, tmp_path: Path) -> None:
    frontal, study, sop = _study(tmp_path)
    lateral, study2, sop2 = _study(tmp_path, ViewPosition="LL")
    sent = _storescu(int(pacs_stack.outputs()["DicomPort"]), [frontal, lateral])
    assert sent.returncode == 0, sent.stderr
    prefix = pacs_stack.template.parameter("UploadPrefix")
    keys = [f"{prefix}dicom/STORESCU/{study}/{sop}.dcm", f"{prefix}dicom/STORESCU/{study2}/{sop2}.dcm"]
    results = pacs_stack.harness.wait_for_results(keys, timeout_s=90)
    assert results[keys[0]]["status"] == "classified"
    assert (results[keys[1]]["status"], results[keys[1]]["reason"]) == ("rejected", "not_frontal")
    # Each answer also as a DICOM SR beside its result, filed in the image's study.
    for key, expected_study in zip(keys, (study, study2), strict=True):
        report = _report(pacs_stack, results[key]["result_id"])
        assert report.StudyInstanceUID == expected_study


def _rest(url: str, data: bytes, content_type: str) -> dict[str, object]:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def _send_from_orthanc(pacs: Orthanc, stack: LocalDeployment, path: Path, study: str, sop: str) -> dict[str, Any]:
    """``path`` uploaded to Orthanc, sent from there to the receiver; its result."""
    instance = _rest(f"{pacs.url}/instances", path.read_bytes(), "application/dicom")
    job = {"Resources": [instance["ID"]], "Synchronous": True}
    _rest(f"{pacs.url}/modalities/xray/store", json.dumps(job).encode(), "application/json")
    key = f"{stack.template.parameter('UploadPrefix')}dicom/ORTHANC/{study}/{sop}.dcm"
    return stack.harness.wait_for_results([key], timeout_s=90)[key]


def _reports_in_orthanc(pacs: Orthanc, study: str, count: int = 1, timeout_s: float = 60) -> list[Any]:
    """The SR instances Orthanc holds in ``study``, once it holds ``count`` of them."""
    import pydicom

    query = {"Level": "Series", "Query": {"StudyInstanceUID": study, "Modality": "SR"}, "Expand": True}
    deadline = time.monotonic() + timeout_s
    while True:
        series = _rest(f"{pacs.url}/tools/find", json.dumps(query).encode(), "application/json")
        instances = [i for s in series for i in s["Instances"]]  # type: ignore[attr-defined]
        if len(instances) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    files = [urllib.request.urlopen(f"{pacs.url}/instances/{i}/file", timeout=30).read() for i in instances]
    return [pydicom.dcmread(io.BytesIO(f)) for f in files]


def test_orthanc_sends_a_study_and_gets_its_result_back_as_an_sr_in_that_study(
    pacs_stack: LocalDeployment, pacs: Orthanc, tmp_path: Path
) -> None:
    path, study, sop = _study(tmp_path)
    result = _send_from_orthanc(pacs, pacs_stack, path, study, sop)
    assert result["status"] == "classified"
    (report,) = _reports_in_orthanc(pacs, study)
    assert (report.PatientID, report.StudyInstanceUID) == (dicoms.PHI["PatientID"], study)
    items = dicoms.sr_values(report)
    assert items["Source image for image processing operation"] == sop
    assert (items["Result"], items["Most probable finding"]) == ("classified", result["label"])
    for label, p in result["probabilities"].items():
        assert items[f"Probability of {label}"] == pytest.approx(100 * float(p), abs=0.01)
    assert items["Input check score"] == pytest.approx(float(result["gate"]["score"]), abs=1e-6)


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"ViewPosition": "LL"}, "not_frontal"),
        ({"Modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}, "unsupported_modality"),
    ],
    ids=["lateral", "ct"],
)
def test_a_refused_image_comes_back_as_an_sr_that_says_why(
    pacs_stack: LocalDeployment, pacs: Orthanc, tmp_path: Path, tags: dict[str, str], reason: str
) -> None:
    path, study, sop = _study(tmp_path, **tags)
    result = _send_from_orthanc(pacs, pacs_stack, path, study, sop)
    assert (result["status"], result["reason"]) == ("rejected", reason)
    (report,) = _reports_in_orthanc(pacs, study)
    items = dicoms.sr_values(report)
    assert (items["Result"], items["Why the image was not classified"]) == ("rejected", reason)
    assert "Most probable finding" not in items


def test_a_push_cut_in_the_middle_is_retried_and_arrives_once(
    pacs_stack: LocalDeployment, pacs: Orthanc, to_orthanc: CuttingProxy, tmp_path: Path
) -> None:
    frontal, study, sop = _study(tmp_path)
    to_orthanc.cut_next(2, after_bytes=1500)  # past the association request, inside the report's P-DATA
    connections, cuts = to_orthanc.connections, to_orthanc.cuts
    assert _storescu(int(pacs_stack.outputs()["DicomPort"]), [frontal]).returncode == 0
    (report,) = _reports_in_orthanc(pacs, study)
    assert dicoms.sr_values(report)["Source image for image processing operation"] == sop
    assert to_orthanc.cuts - cuts == 2  # both cut pushes came back, and the third went through
    assert to_orthanc.connections - connections >= 3
    time.sleep(2)  # a late duplicate push would land now: the SR's UIDs make it the same instance
    assert len(_reports_in_orthanc(pacs, study, count=2, timeout_s=0)) == 1


def test_a_send_cut_in_the_middle_loses_nothing(pacs_stack: LocalDeployment, tmp_path: Path) -> None:
    import pydicom

    sent = [_study(tmp_path) for _ in range(3)]  # about 250 KB each
    prefix = pacs_stack.template.parameter("UploadPrefix")
    keys = [f"{prefix}dicom/STORESCU/{study}/{sop}.dcm" for _, study, sop in sent]
    network = CuttingProxy(int(pacs_stack.outputs()["DicomPort"]))
    try:
        network.cut_next(1, after_bytes=400_000)  # inside the second instance
        assert _storescu(network.port, [p for p, _, _ in sent]).returncode != 0
        # The first was acknowledged: it is classified, whole. The cut one was not: it is nowhere.
        first = pacs_stack.harness.wait_for_results(keys[:1], timeout_s=90)[keys[0]]
        assert first["status"] == "classified"
        s3, bucket = pacs_stack.client("s3"), pacs_stack.template.ref("UploadBucket")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}dicom/STORESCU/")
        held = {o["Key"] for o in listed.get("Contents", [])} & set(keys)
        assert held == {keys[0]}
        stored = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
        whole = pydicom.dcmread(io.BytesIO(stored))
        assert (whole.SOPInstanceUID, len(whole.PixelData)) == (sent[0][2], len(pydicom.dcmread(sent[0][0]).PixelData))
        # The sender resends the study, as a PACS does after a failed transfer: all three end classified.
        assert _storescu(network.port, [p for p, _, _ in sent]).returncode == 0
        results = pacs_stack.harness.wait_for_results(keys, timeout_s=120)
        assert [results[k]["status"] for k in keys] == ["classified"] * 3
        assert network.cuts == 1
    finally:
        network.close()


def test_the_sr_validates_against_the_standard(pacs_stack: LocalDeployment, tmp_path: Path) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dicom3tools' dciodvfy is not installed (.ci/run installs it)")
    frontal, study, sop = _study(tmp_path)
    assert _storescu(int(pacs_stack.outputs()["DicomPort"]), [frontal]).returncode == 0
    key = f"{pacs_stack.template.parameter('UploadPrefix')}dicom/STORESCU/{study}/{sop}.dcm"
    result = pacs_stack.harness.wait_for_results([key], timeout_s=90)[key]
    bucket, prefix = pacs_stack.template.ref("UploadBucket"), pacs_stack.template.parameter("ExplanationPrefix")
    body = pacs_stack.client("s3").get_object(Bucket=bucket, Key=f"{prefix}{result['result_id']}/report.dcm")
    path = tmp_path / "report.dcm"
    path.write_bytes(body["Body"].read())
    checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
    errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith(("Error", "Abort"))]
    assert errors == [], checked.stdout + checked.stderr


def _report(stack: LocalDeployment, result_id: str) -> Any:
    import pydicom

    bucket, prefix = stack.template.ref("UploadBucket"), stack.template.parameter("ExplanationPrefix")
    body = stack.client("s3").get_object(Bucket=bucket, Key=f"{prefix}{result_id}/report.dcm")["Body"].read()
    return pydicom.dcmread(io.BytesIO(body))


def _get(stack: LocalDeployment, path: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        f"{stack.api_url}{path}", headers={"Authorization": stack.harness.id_token(), "Accept": "application/dicom"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_the_api_hands_the_report_to_a_reader_and_404_where_there_is_none(
    pacs_stack: LocalDeployment, tmp_path: Path
) -> None:
    import pydicom

    frontal, study, sop = _study(tmp_path)
    assert _storescu(int(pacs_stack.outputs()["DicomPort"]), [frontal]).returncode == 0
    key = f"{pacs_stack.template.parameter('UploadPrefix')}dicom/STORESCU/{study}/{sop}.dcm"
    result = pacs_stack.harness.wait_for_results([key], timeout_s=90)[key]
    assert json.loads(_get(pacs_stack, f"/results/{result['result_id']}")[2])["structured_report"] is True
    status, content_type, body = _get(pacs_stack, f"/results/{result['result_id']}/sr")
    assert (status, content_type) == (200, "application/dicom")
    assert pydicom.dcmread(io.BytesIO(body)).StudyInstanceUID == study
    png = pacs_stack.harness.upload(
        pacs_stack.harness.key(f"{uuid.uuid4().hex[:8]}/a.png"), (SAMPLES / "covid-2.png").read_bytes()
    )
    without = pacs_stack.harness.wait_for_results([png], timeout_s=90)[png]
    assert _get(pacs_stack, f"/results/{without['result_id']}/sr")[0] == 404
    assert _get(pacs_stack, "/results/no-such-result/sr")[0] == 404


def test_an_unknown_calling_ae_is_refused(pacs_stack: LocalDeployment, tmp_path: Path) -> None:
    frontal, _, _ = _study(tmp_path)
    sent = _storescu(int(pacs_stack.outputs()["DicomPort"]), [frontal], calling="STRANGER")
    assert sent.returncode != 0
    assert "Association Rejected" in sent.stderr + sent.stdout


def test_the_outputs_say_where_to_send(pacs_stack: LocalDeployment) -> None:
    outputs = pacs_stack.outputs()
    assert (outputs["DicomHost"], outputs["DicomAETitle"]) == ("127.0.0.1", DICOM_AE_TITLE)
    assert int(outputs["DicomPort"]) > 0


def _receiver(spool: Path, port: int, aws_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "XRAY_DICOM_ALLOWED_AES": "STORESCU",
        "XRAY_DICOM_SPOOL": str(spool),
        "XRAY_UPLOAD_BUCKET": "pacs-kill-test",
        "XRAY_DICOM_HOST": "127.0.0.1",
        "XRAY_DICOM_PORT": str(port),
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    process = subprocess.Popen([sys.executable, "-m", "pacs"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (
            subprocess.run(
                ["echoscu", "-aet", "STORESCU", "-aec", DICOM_AE_TITLE, "127.0.0.1", str(port)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ):
            return process
        time.sleep(0.2)
    process.kill()
    raise TimeoutError("the receiver did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_receiver_killed_after_acknowledging_loses_nothing(tmp_path: Path) -> None:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{moto_port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    s3.create_bucket(Bucket="pacs-kill-test")
    spool, port = tmp_path / "spool", _free_port()
    files = [_study(tmp_path)[0] for _ in range(5)]
    try:
        # The bucket unreachable (nothing listens there): the receiver acknowledges into its spool.
        first = _receiver(spool, port, f"http://127.0.0.1:{_free_port()}")
        sent = _storescu(port, files)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert sent.returncode == 0, sent.stderr
        assert len(list(spool.glob("*.dcm"))) == 5
        # Restarted with the bucket back: the spool drains into it.
        second = _receiver(spool, port, f"http://{host}:{moto_port}")
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and s3.list_objects_v2(Bucket="pacs-kill-test").get("KeyCount", 0) < 5:
                time.sleep(0.2)
        finally:
            second.terminate()
            second.wait(timeout=10)
        assert s3.list_objects_v2(Bucket="pacs-kill-test")["KeyCount"] == 5
        assert not list(spool.glob("*.dcm"))
    finally:
        moto.stop()
