"""Each Lambda handler called directly with the sample events of events/ (what `sam local invoke -e`
replays), its environment read from template.yaml, AWS in in-process moto, and the endpoint answering
with what the real model server answers for the uploaded image."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import boto3

from tests import images
from tests.conftest import load_event
from tests.unit.conftest import World, endpoint_answers, sqs_event_for


def test_the_batch_handler_turns_the_sample_sqs_event_into_a_stored_result(world: World, tiny_model_dir: Path) -> None:
    image = images.xray_png(256)
    version = world.put("uploads/chest x-ray.png", image)
    answer = endpoint_answers(tiny_model_dir, image)
    response = world.run("ClassifyBatchFunction", sqs_event_for("uploads/chest x-ray.png", version))
    assert response == {"batchItemFailures": []}
    (stored,) = world.stored()
    prediction = answer["predictions"][0]
    if "error" in prediction:
        assert (stored["status"], stored["reason"]) == ("rejected", prediction["error"]["reason"])
    else:
        assert (stored["status"], stored["label"]) == ("classified", prediction["label"])
    assert stored["version_id"] == version


def test_the_batch_handler_retries_a_message_whose_endpoint_answer_breaks_the_contract(world: World) -> None:
    version = world.put("uploads/a.png", images.xray_png(256))
    # Nothing queued: moto's endpoint answers its static text, which is no contract answer.
    response = world.run("ClassifyBatchFunction", sqs_event_for("uploads/a.png", version))
    assert response == {
        "batchItemFailures": [{"itemIdentifier": load_event("sqs-s3-put.json")["Records"][0]["messageId"]}]
    }
    assert world.stored() == []


def test_the_batch_handler_acknowledges_the_s3_test_event_and_writes_nothing(world: World) -> None:
    assert world.run("ClassifyBatchFunction", load_event("s3-test-event.json")) == {"batchItemFailures": []}
    assert world.stored() == []


def test_the_batch_handler_takes_a_direct_s3_event(world: World, tiny_model_dir: Path) -> None:
    image = images.xray_png(256, seed=3)
    version = world.put("uploads/direct.png", image)
    endpoint_answers(tiny_model_dir, image)
    event = load_event("s3-put.json")
    event["Records"][0]["s3"]["object"].update({"key": "uploads/direct.png", "versionId": version})
    assert world.run("ClassifyBatchFunction", event) == {"processed": 1, "retry": 0}
    assert len(world.stored()) == 1


def test_the_dead_letter_handler_records_failed_and_parks_the_message(world: World) -> None:
    event = sqs_event_for("uploads/lost.png", "v-lost")
    assert world.run("DeadLetterFunction", event) == {"batchItemFailures": []}
    (stored,) = world.stored()
    assert (stored["status"], stored["reason"]) == ("failed", "dead_lettered")
    parked = boto3.client("sqs").receive_message(QueueUrl=world.parked_queue)["Messages"]
    assert [m["Body"] for m in parked] == [event["Records"][0]["body"]]


def test_the_api_handler_classifies_the_sample_image(world: World, tiny_model_dir: Path) -> None:
    event = load_event("api-classify.json")
    answer = endpoint_answers(tiny_model_dir, base64.b64decode(event["body"]))
    response = world.run("ApiFunction", event)
    body = json.loads(response["body"])
    prediction = answer["predictions"][0]
    if "error" in prediction:
        assert (response["statusCode"], body["error"]["reason"]) == (400, prediction["error"]["reason"])
    else:
        assert (response["statusCode"], body["label"]) == (200, prediction["label"])


def test_the_api_handler_answers_the_sample_upload_request_with_a_presigned_form(world: World) -> None:
    response = world.run("ApiFunction", load_event("api-create-upload.json"))
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["key"].startswith(world.template.parameter("UploadPrefix"))
    assert body["fields"]["Content-Type"] == "image/png"


def test_the_api_handler_hides_a_result_that_does_not_exist(world: World) -> None:
    response = world.run("ApiFunction", load_event("api-get-result.json"))
    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["reason"] == "ResultNotFoundError"


def test_the_api_handler_lists_the_callers_results_and_not_a_shared_one(world: World) -> None:
    own_key = json.loads(world.run("ApiFunction", load_event("api-create-upload.json"))["body"])["key"]
    world.run("DeadLetterFunction", sqs_event_for(own_key, "v1"))
    world.run("DeadLetterFunction", sqs_event_for("uploads/shared.png", "v2"))  # not a reader: not shown
    event = load_event("api-list-results.json")  # the sample lists classified results: list failed ones
    event["queryStringParameters"]["status"] = "failed"
    event["multiValueQueryStringParameters"]["status"] = ["failed"]
    response = world.run("ApiFunction", event)
    assert response["statusCode"] == 200
    items = json.loads(response["body"])["items"]
    assert [(i["status"], i["scope"], i["key"]) for i in items] == [("failed", "own", own_key)]
