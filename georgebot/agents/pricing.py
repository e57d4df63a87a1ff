"""What a Messages API call cost: a dated table of Anthropic's list prices, per model.

`llm.py` calls `cost_usd` after every call and records it with the tokens through
`StepRecorder.usage`. Update `PRICES` (and `PRICES_AS_OF`) when Anthropic changes its prices;
nothing else in George knows a price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from georgebot.model.views import Usage

PRICES_AS_OF = date(2026, 11, 24)
"""USD per million tokens, as listed on Anthropic's pricing and model pages on this date."""

_MILLION = 1_000_000
_CACHE_WRITE_RATIO = 1.25  # a 5-minute cache write costs 1.25x base input (George uses 5-minute TTLs)
_DATED = re.compile(r"-\d{8}$")  # claude-haiku-4-5-20251001 is priced as claude-haiku-4-5


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write: float
    cache_read: float
    long_prompt: Price | None = None  # rates for every token of a call whose prompt is long
    long_prompt_over: int = 0  # prompt tokens (input + cache reads and writes) above which they apply

    def cost(self, usage: Usage) -> float:
        prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        if self.long_prompt is not None and prompt > self.long_prompt_over:
            return self.long_prompt.cost(usage)
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        )
        return round(total / _MILLION, 6)


def _rates(
    input: float, output: float, cache_read: float, long_prompt: Price | None = None, over: int = 0
) -> Price:
    # Cache reads are not one ratio across models (0.1x, 0.05x, 0.025x of input): listed as published.
    return Price(input, output, round(input * _CACHE_WRITE_RATIO, 4), cache_read, long_prompt, over)


_FABLE_5_2 = _rates(8, 40, 0.20)
_FABLE_5_1 = _rates(10, 50, 0.25)
_FABLE_5 = _rates(10, 50, 1.00)
_OPUS_5_5 = _rates(4, 20, 0.20)
_OPUS = _rates(5, 25, 0.50)
_SONNET_5_5 = _rates(2, 10, 0.10)  # cache reads cut from $0.20 on 2026-10-07
_SONNET_5 = _rates(2, 10, 0.20)
_SONNET_4 = _rates(3, 15, 0.30)
_HAIKU_5_5 = _rates(0.10, 0.50, 0.01, _rates(0.50, 2.50, 0.05), over=100_000)
_HAIKU_4_5 = _rates(1, 5, 0.10)

PRICES: dict[str, Price] = {
    "claude-fable-5-2": _FABLE_5_2,
    "claude-mythos-5-2": _FABLE_5_2,  # each Mythos model is priced as the Fable of its version
    "claude-fable-5-1": _FABLE_5_1,
    "claude-mythos-5-1": _FABLE_5_1,
    "claude-fable-5": _FABLE_5,
    "claude-mythos-5": _FABLE_5,
    "claude-opus-5-5": _OPUS_5_5,
    "claude-opus-5": _OPUS,
    "claude-opus-4-8": _OPUS,
    "claude-opus-4-7": _OPUS,
    "claude-opus-4-6": _OPUS,
    "claude-opus-4-5": _OPUS,
    "claude-sonnet-5-5": _SONNET_5_5,
    "claude-sonnet-5": _SONNET_5,
    "claude-sonnet-4-6": _SONNET_4,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-haiku-5-5": _HAIKU_5_5,
    "claude-haiku-4-5": _HAIKU_4_5,
}

FALLBACK = _SONNET_5_5
"""For a default model the table does not know either."""


def price(model: str, *, default_model: str) -> Price:
    """The model's price. A model the table does not know (a new one, or a preview without a
    list price) is priced at the default model's rates: an estimate, never a zero."""
    for name in (model, default_model):
        found = PRICES.get(_DATED.sub("", name))
        if found is not None:
            return found
    return FALLBACK


def cost_usd(model: str, usage: Usage, *, default_model: str) -> float:
    return price(model, default_model=default_model).cost(usage)
