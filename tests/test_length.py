"""The length stage: `too_long` against the model's per-example limit or a given one."""

from __future__ import annotations

import polars as pl
import pytest
from factories import chat
from pydantic import ValidationError

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages import length, tokens
from ftdata.tokenizer import count_example, get_encoding

SHORT = chat("What is 2 + 2?", "4")
MEDIUM = chat("Tell me about invoices.", "Invoices live under Billing. " * 20)
# ~40,000 tokens: over gpt-4.1-nano's 32,768 limit, under gpt-4.1-mini's 65,536.
HUGE = chat("Summarise this log.", "ok " * 40_000)


def make(*records: dict) -> pl.DataFrame:
    return F.make_frame({F.RECORD: F.canonical_json(r), F.SOURCE: "t.jsonl", F.LINE: i + 1} for i, r in enumerate(records))


def total(record: dict) -> int:
    return count_example(record, get_encoding("o200k_base")).total


def test_model_limit_decides_which_rows_go() -> None:
    frame = make(SHORT, HUGE, MEDIUM)
    nano = length.STAGE.run(frame, length.LengthConfig(model="gpt-4.1-nano-2025-04-14"), Context())
    assert nano.rejected.get_column(F.LINE).to_list() == [2]
    assert nano.rejected.get_column(F.REASON).to_list() == ["too_long"]
    assert nano.rejected.get_column(F.DETAIL).to_list() == [
        f"{total(HUGE)} tokens > limit 32768 for gpt-4.1-nano-2025-04-14"
    ]
    assert nano.kept.get_column(F.LINE).to_list() == [1, 3]
    assert nano.stats == {"limit": 32768, "model": "gpt-4.1-nano-2025-04-14", "too_long": 1}

    mini = length.STAGE.run(frame, length.LengthConfig(), Context(target_model="gpt-4.1-mini"))
    assert mini.rejected.is_empty()
    assert mini.kept.height == 3


def test_uses_counts_from_the_tokens_stage_and_keeps_its_columns() -> None:
    counted = tokens.STAGE.run(make(SHORT, MEDIUM), tokens.TokensConfig(), Context()).kept
    result = length.STAGE.run(counted, length.LengthConfig(max_tokens=total(SHORT)), Context())
    assert result.rejected.get_column(F.LINE).to_list() == [2]
    assert result.rejected.get_column(F.DETAIL).to_list() == [
        f"{total(MEDIUM)} tokens > limit {total(SHORT)} for gpt-4.1-mini"
    ]
    assert result.kept.columns == counted.columns
    assert result.kept.get_column(F.TOKENS).to_list() == [total(SHORT)]


def test_counts_itself_without_the_tokens_stage_and_adds_no_columns() -> None:
    frame = make(SHORT, MEDIUM)
    result = length.STAGE.run(frame, length.LengthConfig(max_tokens=total(SHORT) + 1), Context())
    assert result.kept.columns == frame.columns
    assert result.kept.get_column(F.LINE).to_list() == [1]
    assert set(result.rejected.columns) == set(F.REJECT_SCHEMA)


def test_cli_flag_and_model_check() -> None:
    assert length.STAGE.config_from_cli is not None
    assert length.STAGE.config_from_cli({"length_limit": 4096, "model": None}) == length.LengthConfig(max_tokens=4096)
    with pytest.raises(ValidationError, match="unknown model"):
        length.LengthConfig(model="claude-tuned")
    with pytest.raises(ValidationError):
        length.LengthConfig(max_tokens=0)
