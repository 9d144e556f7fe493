"""A result as a DICOM Comprehensive SR: filed beside its image, holding the whole answer."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from functions.common.structured_report import NOT_A_DIAGNOSIS, fileable, structured_report
from tests import dicoms

CLASSIFIED: dict[str, Any] = {
    "result_id": "r-1",
    "status": "classified",
    "label": "covid",
    "probabilities": {"covid": 0.841, "no_findings": 0.1, "pneumonia": 0.059},
    "covid_threshold": 0.312,
    "gate": {"score": 1.3, "threshold": 2.105},
    "confidence": {"level": "low", "reasons": ["not validated on this site"]},
    "model_name": "xray-covid",
    "model_version": "resnet18-multiclass-1",
    "site_validation": "none",
}


@pytest.fixture
def source() -> pydicom.Dataset:
    data = dicoms.dicom(
        np.full((32, 32), 90, np.uint8), StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid()
    )
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def _report(source: pydicom.Dataset, result: dict[str, Any]) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(structured_report(source, result)))


def test_it_is_filed_in_the_study_of_its_image_with_the_patient_copied(source: pydicom.Dataset) -> None:
    report = _report(source, CLASSIFIED)
    assert report.SOPClassUID.name == "Comprehensive SR Storage"
    assert report.StudyInstanceUID == source.StudyInstanceUID
    assert (report.PatientID, str(report.PatientName)) == (source.PatientID, str(source.PatientName))
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0]
    assert (
        evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    )


def test_it_holds_the_whole_answer(source: pydicom.Dataset) -> None:
    values = dicoms.sr_values(_report(source, CLASSIFIED))
    assert values["Source image for image processing operation"] == source.SOPInstanceUID
    assert values["Most probable finding"] == "covid"
    assert values["Probability of covid"] == pytest.approx(84.1)
    assert values["Probability of pneumonia"] == pytest.approx(5.9)
    assert values["COVID-19 called at or above this probability"] == pytest.approx(31.2)
    assert values["Input check score"] == pytest.approx(1.3)
    assert values["Confidence in the answer"] == "low; not validated on this site"
    assert values["Model"] == "xray-covid resnet18-multiclass-1"
    assert values["Comment"] == NOT_A_DIAGNOSIS


def test_a_refusal_says_why_and_claims_no_finding(source: pydicom.Dataset) -> None:
    values = dicoms.sr_values(_report(source, {"result_id": "r-2", "status": "rejected", "reason": "not_frontal"}))
    assert values["Why the image was not classified"] == "not_frontal"
    assert "Most probable finding" not in values


def test_a_redelivery_writes_the_same_report(source: pydicom.Dataset) -> None:
    assert _report(source, CLASSIFIED).SOPInstanceUID == _report(source, CLASSIFIED).SOPInstanceUID


def test_the_same_image_sent_again_gets_the_same_report(source: pydicom.Dataset) -> None:
    again = {**CLASSIFIED, "result_id": "r-of-the-second-send"}
    assert _report(source, again).SOPInstanceUID == _report(source, CLASSIFIED).SOPInstanceUID


def test_another_model_writes_another_report(source: pydicom.Dataset) -> None:
    retrained = {**CLASSIFIED, "model_version": "resnet18-multiclass-2"}
    assert _report(source, retrained).SOPInstanceUID != _report(source, CLASSIFIED).SOPInstanceUID


def test_an_image_without_its_study_cannot_be_filed(source: pydicom.Dataset) -> None:
    del source.StudyInstanceUID
    assert not fileable(source)
