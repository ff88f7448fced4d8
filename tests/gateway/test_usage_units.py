"""Prices, periods and the usage a finished stream reported."""

from __future__ import annotations

import datetime as dt

import pytest

from relaystack.gateway.settings import Price
from relaystack.gateway.usage import Pricing, Tokens, period_start, tokens_of, utc_day


def test_cost_per_million_with_cached_prompt_tokens_and_free_local_models(caplog: pytest.LogCaptureFixture) -> None:
    pricing = Pricing({"m": Price(input_per_million=2.0, output_per_million=8.0, cached_input_per_million=0.5),
                       "plain": Price(input_per_million=1.0, output_per_million=1.0)},
                      is_local={"local"}.__contains__)
    assert pricing.cost("m", "together", Tokens(1000, 100, 400)) == pytest.approx((600 * 2 + 400 * 0.5 + 100 * 8) / 1e6)
    assert pricing.cost("plain", "together", Tokens(1000, 100, 400)) == pytest.approx(1100 / 1e6)  # no cached price
    assert pricing.cost("m", "local", Tokens(10**6, 10**6)) == 0.0  # the embedded models cost 0
    assert pricing.cost("unpriced", "together", Tokens(5, 5)) == 0.0
    pricing.cost("unpriced", "together", Tokens(5, 5))
    assert caplog.text.count("No price for model 'unpriced'") == 1  # warned once


def test_tokens_of_reads_openai_usage_and_ignores_unknown_counts() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 8}}
    assert tokens_of(usage) == Tokens(12, 3, 8)
    assert tokens_of({"prompt_tokens": -1, "total_tokens": -1}) == Tokens(0, 0, 0)
    assert tokens_of(None) == Tokens()


def test_periods_start_on_utc_calendar_days() -> None:
    wednesday = dt.datetime(2026, 7, 15, 23, 59, tzinfo=dt.UTC).timestamp()
    assert utc_day(wednesday) == "2026-07-15"
    assert period_start("day", wednesday) == "2026-07-15"
    assert period_start("week", wednesday) == "2026-07-13"
    assert period_start("month", wednesday) == "2026-07-01"
    assert period_start("total", wednesday) < "1970-01-01"


def test_the_access_log_masks_key_shaped_text_in_a_model_that_did_not_resolve() -> None:
    from relaystack.logs import _unresolved

    assert _unresolved("rsk-0123456789ab-" + "aB3_-x" * 7) == "***"
    assert _unresolved("together/" + "9f" * 32) == "together/***"
    assert _unresolved("sk-proj-" + "Ab1" * 12) == "sk-proj-***"
    for name in ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "gpt-4o-mini-2024-07-18", "nope"):
        assert _unresolved(name) == name
