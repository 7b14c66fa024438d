"""The tokens stage: per-row counts as columns, the manifest section, nothing rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from factories import chat
from pydantic import ValidationError
from test_tokenizer import build_hf_tokenizer

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.stages.tokens import STAGE, TRAINED_TOKENS, TokensConfig
from ftdata.tokenizer import count_example, get_encoding


def make(records: list[dict[str, Any]]) -> pl.DataFrame:
    return F.make_frame({F.RECORD: F.canonical_json(r), F.SOURCE: "t.jsonl", F.LINE: i + 1} for i, r in enumerate(records))


RECORDS = [
    chat("Where is my invoice?", "Billing → Invoices.", system="Be brief."),
    chat("Reset my password please", "Settings, Security, Reset password; the link lasts one hour."),
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "weight": 0}]},
]


def test_adds_counts_per_row_and_rejects_nothing() -> None:
    frame = make(RECORDS)
    result = STAGE.run(frame, TokensConfig(), Context(target_model="gpt-4.1-mini-2025-04-14"))
    encoding = get_encoding("o200k_base")
    expected = [count_example(r, encoding) for r in RECORDS]
    assert result.kept.get_column(F.TOKENS).to_list() == [c.total for c in expected]
    assert result.kept.get_column(TRAINED_TOKENS).to_list() == [c.trained for c in expected]
    assert result.kept.get_column(TRAINED_TOKENS).to_list()[2] == 0  # weight 0
    assert result.rejected.is_empty()
    assert result.kept.get_column(F.ID).to_list() == frame.get_column(F.ID).to_list()
    totals = sorted(c.total for c in expected)
    assert result.sections == {
        "tokens": {
            "model": "gpt-4.1-mini-2025-04-14",
            "encoding": "o200k_base",
            "total": sum(totals),
            "trained": sum(c.trained for c in expected),
            "mean": round(sum(totals) / 3, 2),
            "p50": totals[1],
            "p95": totals[2],
            "max": totals[2],
            "rows": 3,
        }
    }


def test_config_model_wins_over_the_run_target_and_picks_the_encoding() -> None:
    result = STAGE.run(make(RECORDS), TokensConfig(model="gpt-3.5-turbo-0125"), Context(target_model="gpt-4.1"))
    assert result.sections["tokens"]["encoding"] == "cl100k_base"
    encoding = get_encoding("cl100k_base")
    assert result.kept.get_column(F.TOKENS).to_list() == [count_example(r, encoding).total for r in RECORDS]


def test_empty_frame_gives_zero_stats() -> None:
    result = STAGE.run(F.empty_frame(), TokensConfig(), Context())
    assert result.kept.height == 0
    assert result.sections["tokens"]["rows"] == 0 and result.sections["tokens"]["total"] == 0


def test_hf_tokenizer_counts_with_the_chat_template(tmp_path: Path) -> None:
    directory = build_hf_tokenizer(tmp_path / "tok")
    records = [chat("hello how are you", "fine thanks")]
    config = TokensConfig(model="local:tiny", tokenizer=f"hf:{directory}")
    result = STAGE.run(make(records), config, Context())
    # <s> <|user|> hello how are you <|end|> <|assistant|> fine thanks <|end|>
    assert result.kept.get_column(F.TOKENS).to_list() == [11]
    assert result.kept.get_column(TRAINED_TOKENS).to_list() == [3]
    assert result.sections["tokens"]["tokenizer"] == f"hf:{directory}"


def test_rows_the_chat_template_refuses_are_rejected(tmp_path: Path) -> None:
    strict = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
        "<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|> {% endif %}"
    )
    directory = build_hf_tokenizer(tmp_path / "strict", strict)
    ok = chat("hello how are you", "fine thanks")
    two_users = {"messages": [{"role": "user", "content": "hello"}, *ok["messages"]]}
    config = TokensConfig(model="local:tiny", tokenizer=f"hf:{directory}")
    result = STAGE.run(make([ok, two_users]), config, Context())
    assert result.kept.get_column(F.LINE).to_list() == [1]
    assert result.rejected.get_column(F.LINE).to_list() == [2]
    assert result.rejected.get_column(F.REASON).to_list() == ["chat_template_error"]
    assert "roles must alternate user/assistant" in result.rejected.get_column(F.DETAIL)[0]


def test_unknown_model_and_bad_tokenizer_fail_in_the_config() -> None:
    with pytest.raises(ValidationError, match="unknown model 'gpt-9'"):
        TokensConfig(model="gpt-9")
    with pytest.raises(ValidationError, match="unknown tokenizer 'bert'"):
        TokensConfig(tokenizer="bert")


def test_cli_flags_build_the_config() -> None:
    assert STAGE.config_from_cli is not None
    assert STAGE.config_from_cli({"model": None, "tokenizer": None}) == TokensConfig()
    config = STAGE.config_from_cli({"model": "gpt-4o-mini", "tokenizer": "hf:/m"})
    assert config == TokensConfig(model="gpt-4o-mini", tokenizer="hf:/m")
    assert [o.name for o in STAGE.cli_options] == ["model", "tokenizer"]
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        STAGE.config_from_cli({"model": "gpt-9", "tokenizer": None})
