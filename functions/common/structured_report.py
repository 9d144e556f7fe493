"""A result as a DICOM Structured Report for the PACS, beside the image it answers for.

A Comprehensive SR (highdicom) rather than the TID 1500 measurement report: TID 1500 is built for
measurements of regions and tracking identifiers, and this answer is a classification of the whole
image with its probabilities, the input check, the confidence and the model; a Comprehensive SR holds
those as coded, numeric and text items under one container, and any PACS or SR viewer shows it. The
concepts have no code in DCM or SNOMED for this model's outputs, so they are coded in the project's
own scheme (``CODING_SCHEME``, each with a plain-words meaning), with UCUM units.

It references the source instance (its SOP class and instance UID, in the evidence sequence with its
study and series) and copies the patient and study modules from it (highdicom does, from the
evidence), so the PACS files it in the same study. It carries patient identifiers by necessity: it
is stored under the result's private prefix, handed out only to those who may read the result, and
never logged, notified or measured. Its UIDs derive from the source instance and the model version:
a redelivery writes the same SR, and so does the same image sent again (a PACS that resends a study
after a dropped connection files one report per image and model, not one per send).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # pydicom and highdicom load when a report is made: not on the function's cold start
    from pydicom.dataset import Dataset

CODING_SCHEME: Final = "99XRAYCOVID"
MANUFACTURER: Final = "xray-covid-classifier"
SERIES_NUMBER: Final = 9901
NOT_A_DIAGNOSIS: Final = (
    "Decision support only, not a diagnosis: a model's reading of one chest radiograph, to be weighed by a "
    "clinician with the images and the patient."
)
# The source's identity a PACS needs to file a report beside it.
REQUIRED_TAGS: Final = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
# Type 2 attributes of the patient and study modules that the report copies: present, if empty, when
# the source left them out.
TYPE2_COPIED: Final = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def _code(value: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value, CODING_SCHEME, meaning)


def fileable(source: Dataset) -> bool:
    """Whether the source carries what a PACS needs to file a report beside it."""
    return all(str(source.get(tag, "")) for tag in REQUIRED_TAGS)


def _items(result: Mapping[str, Any]) -> list[Any]:
    from highdicom.sr import CodedConcept, NumContentItem, RelationshipTypeValues, TextContentItem
    from pydicom.sr.codedict import codes

    contains = RelationshipTypeValues.CONTAINS
    percent = CodedConcept("%", "UCUM", "percent")
    items: list[Any] = [TextContentItem(_code("status", "Result"), str(result["status"]), contains)]
    if result.get("label"):
        items.append(TextContentItem(_code("label", "Most probable finding"), str(result["label"]), contains))
    for label, p in sorted((result.get("probabilities") or {}).items()):
        name = _code(f"p-{label}", f"Probability of {label}")
        items.append(NumContentItem(name, round(100 * float(p), 2), percent, relationship_type=contains))
    if result.get("covid_threshold") is not None:
        name = _code("operating-point", "COVID-19 called at or above this probability")
        value = round(100 * float(result["covid_threshold"]), 2)
        items.append(NumContentItem(name, value, percent, relationship_type=contains))
    if result.get("reason"):
        items.append(
            TextContentItem(_code("refusal", "Why the image was not classified"), str(result["reason"]), contains)
        )
    gate = result.get("gate") or {}
    if gate.get("score") is not None:
        unity = CodedConcept("1", "UCUM", "no units")
        items.append(
            NumContentItem(
                _code("gate-score", "Input check score"), float(gate["score"]), unity, relationship_type=contains
            )
        )
        if gate.get("threshold") is not None:
            name = _code("gate-threshold", "Input check: refused above")
            items.append(NumContentItem(name, float(gate["threshold"]), unity, relationship_type=contains))
    confidence = result.get("confidence") or {}
    if confidence:
        text = str(confidence["level"]) + "".join(f"; {r}" for r in confidence.get("reasons", []))
        items.append(TextContentItem(_code("confidence", "Confidence in the answer"), text, contains))
    model = " ".join(str(result[k]) for k in ("model_name", "model_version") if result.get(k))
    if model:
        items.append(TextContentItem(_code("model", "Model"), model, contains))
    site = result.get("site_validation") or "none"
    items.append(TextContentItem(_code("site-validation", "Validated on this site's own images"), str(site), contains))
    items.append(TextContentItem(codes.DCM.Comment, NOT_A_DIAGNOSIS, contains))
    return items


def structured_report(source: Dataset, result: Mapping[str, Any]) -> bytes:
    """The SR of ``result`` for the image whose header is ``source`` (no pixels needed), as a DICOM file."""
    from highdicom.sr import (
        CompositeContentItem,
        ComprehensiveSR,
        ContainerContentItem,
        RelationshipTypeValues,
    )
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    root = ContainerContentItem(_code("report", "Chest X-ray COVID-19 classification"))
    source_item = CompositeContentItem(
        codes.DCM.SourceImageForImageProcessingOperation,
        source.SOPClassUID,
        source.SOPInstanceUID,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )
    root.ContentSequence = DicomSequence([source_item, *_items(result)])
    evidence = copy.copy(source)
    for keyword in TYPE2_COPIED:
        if keyword not in evidence:
            setattr(evidence, keyword, "")
    answered = [str(source.SOPInstanceUID), str(result.get("model_version") or "")]
    report = ComprehensiveSR(
        evidence=[evidence],
        content=root,
        series_instance_uid=generate_uid(entropy_srcs=[*answered, "series"]),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(entropy_srcs=[*answered, "report"]),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
    )
    buffer = io.BytesIO()
    report.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
