"""Per-user limits: fixed-window counters in the results table (in-process moto), and the API's 429."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.common.errors import LimitExceededError
from functions.common.limits import TableLimiter, Window
from functions.common.results import ResultsStore
from tests.conftest import load_event
from tests.unit.conftest import World

SUB = "7d8e9f00-1111-4a2b-8c3d-4e5f6a7b8c9d"
OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3"
WINDOW = Window("requests", 3, 60)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_user_may_use_the_whole_limit(results_table: Any) -> None:
    limiter = TableLimiter(results_table, Clock(600.0))
    for _ in range(WINDOW.limit):
        limiter.take(SUB, WINDOW)


def test_one_more_is_refused_with_the_seconds_left_in_the_window(results_table: Any) -> None:
    limiter = TableLimiter(results_table, Clock(615.0))
    for _ in range(WINDOW.limit):
        limiter.take(SUB, WINDOW)
    with pytest.raises(LimitExceededError) as refused:
        limiter.take(SUB, WINDOW)
    assert refused.value.retry_after_s == 45


def test_another_user_is_not_starved(results_table: Any) -> None:
    limiter = TableLimiter(results_table, Clock(600.0))
    for _ in range(WINDOW.limit):
        limiter.take(SUB, WINDOW)
    limiter.take(OTHER, WINDOW)


def test_the_next_window_starts_afresh(results_table: Any) -> None:
    clock = Clock(600.0)
    limiter = TableLimiter(results_table, clock)
    for _ in range(WINDOW.limit):
        limiter.take(SUB, WINDOW)
    clock.now = 660.0
    limiter.take(SUB, WINDOW)


def test_the_counters_appear_in_no_listing(results_table: Any) -> None:
    TableLimiter(results_table, Clock(600.0)).take(SUB, WINDOW)
    items, _ = ResultsStore(results_table).list_scoped((f"user#{SUB}",), None, None, 50, None)
    assert items == []


def test_the_api_answers_429_with_retry_after_past_the_users_limit(world: World) -> None:
    event = load_event("api-get-result.json")
    answers = [world.run("ApiFunction", event, REQUESTS_PER_USER_PER_MINUTE="2") for _ in range(3)]
    assert [a["statusCode"] for a in answers] == [404, 404, 429]
    assert json.loads(answers[2]["body"])["error"]["reason"] == "rate_limited"
    assert 1 <= int(answers[2]["multiValueHeaders"]["Retry-After"][0]) <= 60


def test_upload_forms_count_against_the_hourly_upload_limit(world: World) -> None:
    event = load_event("api-create-upload.json")
    answers = [world.run("ApiFunction", event, UPLOADS_PER_USER_PER_HOUR="1")["statusCode"] for _ in range(2)]
    assert answers == [200, 429]
