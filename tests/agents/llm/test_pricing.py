"""The dated price table: every model the SDK knows is priced or falls back to the default's."""

from __future__ import annotations

from georgebot.agents import pricing
from georgebot.model.views import Usage

MILLION = Usage(input_tokens=1_000_000)


def test_known_models_are_priced_from_the_table_with_5_minute_cache_writes_at_one_and_a_quarter():
    price = pricing.price("claude-opus-5-5", default_model="claude-sonnet-5-5")

    assert (price.input, price.output, price.cache_write, price.cache_read) == (4, 20, 5, 0.20)


def test_dated_model_ids_are_priced_as_their_alias():
    assert pricing.price("claude-haiku-4-5-20251001", default_model="x") is pricing.PRICES["claude-haiku-4-5"]


def test_an_unknown_model_is_priced_at_the_default_models_rates():
    assert pricing.cost_usd("claude-future-9", MILLION, default_model="claude-opus-5") == 5.0
    fallback = pricing.FALLBACK.input
    assert pricing.cost_usd("claude-future-9", MILLION, default_model="also-unknown") == fallback


def test_a_long_prompt_on_haiku_5_5_costs_the_higher_rates_on_every_token():
    short = Usage(input_tokens=50_000, output_tokens=1_000, cache_read_input_tokens=50_000)
    long = Usage(input_tokens=50_000, output_tokens=1_000, cache_read_input_tokens=50_001)

    assert pricing.cost_usd("claude-haiku-5-5", short, default_model="x") == round(
        (50_000 * 0.10 + 1_000 * 0.50 + 50_000 * 0.01) / 1e6, 6)
    assert pricing.cost_usd("claude-haiku-5-5", long, default_model="x") == round(
        (50_000 * 0.50 + 1_000 * 2.50 + 50_001 * 0.05) / 1e6, 6)
