"""The local generator for real: the bundled SmolLM2-135M-Instruct on a handful of examples (CPU, ~10-30 s)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import polars as pl
import pytest
from factories import chat

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.synth.local_generator import LocalGenerator
from ftdata.synth.stage import META, SynthConfig, synthesize
from ftdata.validation import validate_record

SYSTEM = "You are the support assistant of Ledgerly, an invoicing app. Answer in one or two sentences."
ROWS = [
    ("invoices", "How do I add my VAT number to invoices?", "Open Settings > Company, enter the VAT number and save."),
    ("invoices", "Can I send an invoice in euros?", "Yes: pick the currency on the invoice itself before sending it."),
    ("invoices", "How do I stop a recurring invoice?", "Open Recurring, choose the schedule and click Pause."),
    ("payments", "A client says the payment link does not work.", "Links expire after 30 days; click Resend on the invoice."),
    ("payments", "Can clients pay by bank transfer?", "Yes: turn on Bank transfer under Settings > Payments."),
    ("payments", "When do card payments reach my account?", "Card payments arrive two business days after the client pays."),
]
ALLOWED_REASONS = {"unparseable_output", "degenerate_repetition", "truncated", "exact_duplicate", "near_duplicate",
                   "over_synthetic_share"}


@pytest.mark.slow
def test_bundled_model_makes_synthetic_rows_and_the_cache_replays_them(tmp_path: Path) -> None:
    frame = F.make_frame(
        {F.RECORD: F.canonical_json(chat(user, answer, SYSTEM)), F.SOURCE: "support.jsonl", F.LINE: i + 1, F.LABEL: label}
        for i, (label, user, answer) in enumerate(ROWS)
    )
    config = SynthConfig(n=4, generator="local", k=2, max_new_tokens=48, batch_size=4, max_share=1.0)
    ctx = Context(seed=0, cache_dir=tmp_path)
    generator = LocalGenerator()
    result = synthesize(frame, config, ctx, generator)

    assert result.generated == 4
    assert frame.height + 4 == result.kept.height + result.rejected.height
    section = result.sections["synthetic"]
    assert section["model"] == "SmolLM2-135M-Instruct" and section["origin"] == "synthetic:local:SmolLM2-135M-Instruct"
    assert section["tokens_out"] > 0 and section["cost_usd"] == 0.0
    assert set(result.rejected.get_column(F.REASON).to_list()) <= ALLOWED_REASONS
    synthetic = result.kept.filter(pl.col(F.ORIGIN) == "synthetic:local:SmolLM2-135M-Instruct")
    assert synthetic.height == section["accepted"] == 4 - result.rejected.height
    labels = dict(zip(frame.get_column(F.ID), frame.get_column(F.LABEL), strict=True))
    for row in synthetic.iter_rows(named=True):
        record = orjson.loads(row[F.RECORD])
        assert validate_record(record, "chat") == []
        assert record["messages"][0] == {"role": "system", "content": SYSTEM}
        assert {labels[s] for s in row[META]["seed_ids"]} == {row[F.LABEL]}

    started = time.perf_counter()
    replay = synthesize(frame, config, ctx, generator)
    assert time.perf_counter() - started < 5  # every reply comes from the cache
    assert replay.kept.equals(result.kept) and replay.rejected.equals(result.rejected)
