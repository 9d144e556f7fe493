"""bench/cost.py: the price file says where each price comes from, and the bill follows the usage."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bench.cost import PRICES, monthly

MS = 20.0


@pytest.fixture
def prices() -> dict[str, Any]:
    return json.loads(PRICES.read_text())


def test_every_price_says_where_and_when_it_was_read(prices: dict[str, Any]) -> None:
    for name, entry in prices["prices"].items():
        assert entry["price"] > 0, name
        assert entry["source"], name
        assert entry["read"], name
        assert isinstance(entry["official"], bool), name
        if entry["official"]:
            assert "aws.amazon.com" in entry["source"], name


def test_a_realtime_endpoint_costs_the_same_whatever_the_traffic(prices: dict[str, Any]) -> None:
    assert monthly(prices, 100, "realtime", MS).endpoint == monthly(prices, 1_000_000, "realtime", MS).endpoint


def test_a_serverless_endpoint_costs_in_proportion_to_the_images(prices: dict[str, Any]) -> None:
    small, large = (monthly(prices, n, "serverless", MS).endpoint for n in (1_000, 10_000))
    assert large == pytest.approx(10 * small)


def test_the_serverless_bill_is_time_by_memory_by_price_plus_the_data(prices: dict[str, Any]) -> None:
    p = copy.deepcopy(prices)
    p["prices"]["sagemaker_serverless_data_gb"]["price"] = 0.0
    use = p["usage"]
    expected = (
        1_000
        * (MS + 10.0)
        / 1000
        * use["serverless_memory_gb"]
        * p["prices"]["sagemaker_serverless_gb_second"]["price"]
    )
    assert monthly(p, 1_000, "serverless", MS).endpoint == pytest.approx(expected)


def test_the_batch_function_pays_for_the_time_it_waits_on_the_endpoint(prices: dict[str, Any]) -> None:
    slow = copy.deepcopy(prices)
    slow["usage"]["gpu_ms_per_image"] *= 10
    assert monthly(slow, 1_000, "realtime", MS).lambda_ > monthly(prices, 1_000, "realtime", MS).lambda_
