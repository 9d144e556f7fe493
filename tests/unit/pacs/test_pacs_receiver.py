"""The DICOM receiver: who may send, what it stores where, and that nothing acknowledged is lost."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, DigitalXRayImageStorageForPresentation, Verification

from model.core.errors import InvalidSettingError
from pacs.config import ReceiverConfig
from pacs.receiver import NOT_AUTHORIZED, SUCCESS, Receiver, object_key
from pacs.spool import Spool
from pacs.uploader import Uploader
from tests import dicoms

SENDER = "MODALITY1"


class MemoryStore:
    def __init__(self, fail: int = 0) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail = fail

    def put(self, key: str, data: bytes) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the bucket is unreachable")
        self.objects[key] = data


def _config(tmp_path: Path, **env: str) -> ReceiverConfig:
    base = {
        "XRAY_DICOM_ALLOWED_AES": SENDER,
        "XRAY_DICOM_SPOOL": str(tmp_path / "spool"),
        "XRAY_UPLOAD_BUCKET": "uploads-bucket",
        "XRAY_DICOM_HOST": "127.0.0.1",
        "XRAY_DICOM_PORT": "0",
    }
    return ReceiverConfig.from_env({**base, **env})


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    config = _config(tmp_path)
    running = Receiver(config, Spool(config.spool))
    running.start()
    yield running
    running.stop()


def _instance(**tags: str) -> pydicom.Dataset:
    data = dicoms.dicom(np.full((64, 64), 100, np.uint8), StudyInstanceUID=generate_uid(), **tags)
    return pydicom.dcmread(io.BytesIO(data))


def _send(port: int, datasets: list[pydicom.Dataset], calling: str = SENDER) -> list[int] | None:
    """C-STORE each dataset; the statuses, or None where the association was rejected."""
    scu = AE(ae_title=calling)
    scu.add_requested_context(DigitalXRayImageStorageForPresentation)
    scu.add_requested_context(CTImageStorage)
    assoc = scu.associate("127.0.0.1", port, ae_title="XRAYCLASSIFY")
    if not assoc.is_established:
        return None
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def test_a_received_instance_is_spooled_under_its_study_and_acknowledged(receiver: Receiver) -> None:
    ds = _instance()
    assert _send(receiver.port, [ds]) == [SUCCESS]
    [item] = list(receiver.spool.pending())
    assert item.key == f"uploads/dicom/{SENDER}/{ds.StudyInstanceUID}/{ds.SOPInstanceUID}.dcm"
    stored = pydicom.dcmread(io.BytesIO(item.read()))
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert stored.PixelData == ds.PixelData


def test_an_unknown_calling_ae_is_rejected_at_association(receiver: Receiver) -> None:
    assert _send(receiver.port, [_instance()], calling="STRANGER") is None
    assert len(receiver.spool) == 0


def test_an_address_outside_the_allowed_hosts_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, XRAY_DICOM_ALLOWED_HOSTS="10.0.0.9")
    running = Receiver(config, Spool(config.spool))
    running.start()
    try:
        assert _send(running.port, [_instance()]) == [NOT_AUTHORIZED]
    finally:
        running.stop()
    assert len(running.spool) == 0


def test_c_echo_answers(receiver: Receiver) -> None:
    scu = AE(ae_title=SENDER)
    scu.add_requested_context(Verification)
    assoc = scu.associate("127.0.0.1", receiver.port, ae_title="XRAYCLASSIFY")
    assert int(assoc.send_c_echo().Status) == SUCCESS
    assoc.release()


def test_nothing_acknowledged_is_lost_when_the_uploader_dies_before_uploading(receiver: Receiver) -> None:
    # The receiver runs without an uploader, as if it died after acknowledging: then a restart.
    sent = [_instance() for _ in range(5)]
    assert _send(receiver.port, sent) == [SUCCESS] * 5
    store = MemoryStore()
    restarted = Uploader(Spool(receiver.spool.directory), store)
    assert restarted.upload_pending() == 5
    assert {k.rsplit("/", 1)[1] for k in store.objects} == {f"{ds.SOPInstanceUID}.dcm" for ds in sent}
    assert len(receiver.spool) == 0


def test_a_failed_upload_stays_in_the_spool_and_is_retried(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put("uploads/dicom/A/1.2/3.4.dcm", b"instance")
    store = MemoryStore(fail=1)
    uploader = Uploader(spool, store)
    assert uploader.upload_pending() == 0
    assert len(spool) == 1
    assert uploader.upload_pending() == 1
    assert store.objects == {"uploads/dicom/A/1.2/3.4.dcm": b"instance"}


def test_a_half_written_spool_file_was_never_acknowledged_and_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "abc.key").write_text("uploads/dicom/A/1/2.dcm")
    (tmp_path / "spool" / "abc.part").write_bytes(b"half")
    spool = Spool(tmp_path / "spool")
    assert len(spool) == 0
    assert not (tmp_path / "spool" / "abc.part").exists()


def test_the_logs_carry_no_identifiers(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    ds = _instance()
    # Every logger, pynetdicom's included: its standard handlers would log the instance's UIDs.
    with caplog.at_level(logging.DEBUG):
        _send(receiver.port, [ds])
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for secret in (*dicoms.PHI.values(), ds.StudyInstanceUID, ds.SOPInstanceUID):
        assert secret not in text


def test_keys_use_uids_only_as_uids() -> None:
    assert (
        object_key("uploads/", "CT 1/../x", "not-a-uid", "1.2.3") == "uploads/dicom/CT_1_.._x/unknown-study/1.2.3.dcm"
    )
    with pytest.raises(ValueError, match="SOP Instance UID"):
        object_key("uploads/", "A", "1.2", "../../etc")


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"XRAY_DICOM_ALLOWED_AES": ""}, "XRAY_DICOM_ALLOWED_AES is required"),
        ({"XRAY_DICOM_SPOOL": ""}, "XRAY_DICOM_SPOOL is required"),
        ({"XRAY_DICOM_PORT": "http"}, "not a port"),
        ({"XRAY_DICOM_ALLOWED_AES": "A-TITLE-FAR-TOO-LONG"}, "not an AE title"),
        ({"XRAY_DICOM_TLS_CERT": "/c.pem"}, "go together"),
    ],
)
def test_a_bad_setting_fails_at_start(tmp_path: Path, env: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidSettingError, match=why):
        _config(tmp_path, **env)


def test_the_container_holds_every_module_the_receiver_imports() -> None:
    from model.builder.package import LAMBDA_FLOORS, floor_files
    from tests.imports import closure

    root = Path(__file__).resolve().parents[3]
    dockerfile = (root / "pacs" / "Dockerfile").read_text()
    assert closure((root / "pacs").glob("*.py")) <= set(floor_files(LAMBDA_FLOORS))
    assert "COPY model/__init__.py model/\nCOPY model/core/ model/core/" in dockerfile
