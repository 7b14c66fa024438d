"""exact_dedup: which rows go (exact_duplicate), which row they name, scopes and keep policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from factories import chat, write_jsonl

from ftdata import frame as F
from ftdata.pipeline import curate
from ftdata.stage import Context
from ftdata.stages.exact_dedup import STAGE, ExactDedupConfig

SYSTEM = "You are a support agent for Ledgerly."


def frame_of(examples: list[dict[str, Any]], origins: list[str] | None = None) -> pl.DataFrame:
    return F.make_frame(
        {F.RECORD: F.canonical_json(e), F.SOURCE: "t.jsonl", F.LINE: i + 1, F.ORIGIN: (origins or [])[i] if origins else "human"}
        for i, e in enumerate(examples)
    )


def dedup(frame: pl.DataFrame, **config: Any) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    result = STAGE.run(frame, ExactDedupConfig(**config), Context())
    assert result.kept.height + result.rejected.height == frame.height
    return result.kept, result.rejected, result.stats


def lines(frame: pl.DataFrame) -> list[int]:
    return frame.get_column(F.LINE).to_list()


def test_case_and_whitespace_copies_go_with_their_partner_and_share_a_cluster() -> None:
    frame = frame_of([
        chat("How do I reset my password?", "Open Settings, then Security.", SYSTEM),
        chat("Where is my invoice?", "Under Billing.", SYSTEM),
        chat("HOW do I  reset my\tpassword?", "open settings,\nthen security.", SYSTEM),
        chat("How do I reset my password?\u00a0", "Open Settings,   then Security.", SYSTEM.upper()),
    ])
    kept, rejected, stats = dedup(frame)
    assert lines(kept) == [1, 2] and lines(rejected) == [3, 4]
    first_id = frame.get_column(F.ID)[0]
    assert rejected.get_column(F.REASON).to_list() == ["exact_duplicate"] * 2
    assert rejected.get_column(F.DUPLICATE_OF).to_list() == [first_id, first_id]
    assert rejected.get_column(F.SIMILARITY).to_list() == [1.0, 1.0]
    assert rejected.get_column(F.DETAIL)[0] == f"same normalised conversation as {first_id[:12]}"
    assert rejected.get_column(F.CLUSTER).to_list() == [first_id, first_id]
    assert kept.get_column(F.CLUSTER).to_list() == [first_id, None]  # the invoice row has no copy
    assert stats == {"scope": "conversation", "keep": "first", "groups": 1, "duplicates": 2, "not_compared": 0}


def test_different_words_a_literal_backslash_n_or_another_role_are_not_copies() -> None:
    frame = frame_of([
        chat("print a\\nb", "ok"),  # a backslash and an n, not a line break
        chat("print a\nb", "ok"),
        chat("print a b", "ok"),
        {"messages": [{"role": "system", "content": "print a b"}, {"role": "assistant", "content": "ok"}]},
        chat("print a b c", "ok"),
    ])
    kept, rejected, _ = dedup(frame)
    # Only the line break collapses into a space: row 2 duplicates row 3's text, which comes later.
    assert lines(kept) == [1, 2, 4, 5] and lines(rejected) == [3]
    assert rejected.get_column(F.DUPLICATE_OF).to_list() == [frame.get_column(F.ID)[1]]


def test_key_order_in_the_input_file_does_not_hide_a_copy(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chats.jsonl", [
        '{"messages": [{"role": "user", "content": "Can I pay by card?"}, {"role": "assistant", "content": "Yes, Visa and Mastercard."}]}',
        '{"messages": [{"content": "can I pay by card?", "role": "user"}, {"content": "Yes, Visa and  Mastercard.", "role": "assistant"}]}',
        '{"messages": [{"role": "user", "content": "Do you take PayPal?"}, {"role": "assistant", "content": "Not yet."}]}',
    ])
    result = curate([path], steps=[("exact_dedup", {})], dataset="keys", store=tmp_path / "store")
    assert result.manifest["totals"]["rejected_by_reason"] == {"exact_dedup.exact_duplicate": 1}
    stage = next(s for s in result.manifest["stages"] if s["name"] == "exact_dedup")
    assert stage["rows_in"] == 3 and stage["rows_out"] == 2


def test_scope_user_drops_the_same_question_with_another_answer() -> None:
    frame = frame_of([
        chat("What does the Pro plan cost?", "It is 12 euros a month."),
        chat("What does the Pro plan cost?", "Twelve euros per month, billed yearly."),
        chat("what does the pro plan  cost?", "12 EUR."),
        chat("What does the Team plan cost?", "It is 12 euros a month."),
    ])
    kept, rejected, _ = dedup(frame, scope="conversation")
    assert rejected.is_empty() and kept.height == 4
    kept, rejected, stats = dedup(frame, scope="user")
    assert lines(kept) == [1, 4] and lines(rejected) == [2, 3]
    assert rejected.get_column(F.DETAIL)[0].startswith("same user turns as ")
    assert stats["groups"] == 1 and stats["duplicates"] == 2


def test_scope_user_never_groups_rows_without_user_text() -> None:
    frame = frame_of([
        {"messages": [{"role": "system", "content": "Greet."}, {"role": "assistant", "content": "Hello!"}]},
        {"messages": [{"role": "system", "content": "Say bye."}, {"role": "assistant", "content": "Bye!"}]},
    ])
    kept, rejected, stats = dedup(frame, scope="user")
    assert kept.height == 2 and rejected.is_empty() and stats["not_compared"] == 2


def test_keep_longest_keeps_the_longest_record() -> None:
    frame = frame_of([
        chat("Refund?", "Yes."),
        chat("Refund?", "Yes.   "),  # normalises to the same text, longer record
        chat("Other?", "No."),
    ])
    kept, rejected, _ = dedup(frame, keep="longest")
    assert lines(kept) == [2, 3] and lines(rejected) == [1]
    assert rejected.get_column(F.DUPLICATE_OF).to_list() == [frame.get_column(F.ID)[1]]


@pytest.mark.parametrize(("keep", "kept_line"), [("first", 1), ("human", 2)])
def test_keep_human_prefers_human_rows_over_synthetic_ones(keep: str, kept_line: int) -> None:
    frame = frame_of(
        [chat("Cancel my plan", "Done."), chat("cancel my plan", "done."), chat("CANCEL MY PLAN", "DONE.")],
        origins=["synthetic:local:smollm2", "human", "human"],
    )
    kept, rejected, _ = dedup(frame, keep=keep)
    assert lines(kept) == [kept_line]
    assert set(rejected.get_column(F.DUPLICATE_OF).to_list()) == {frame.get_column(F.ID)[kept_line - 1]}


def test_an_existing_cluster_of_the_kept_row_is_reused() -> None:
    frame = frame_of([chat("Same?", "Yes."), chat("same?", "yes.")]).with_columns(
        pl.Series(F.CLUSTER, ["c-earlier", None], dtype=pl.String())
    )
    kept, rejected, _ = dedup(frame)
    assert kept.get_column(F.CLUSTER).to_list() == ["c-earlier"]
    assert rejected.get_column(F.CLUSTER).to_list() == ["c-earlier"]


def test_cli_flags_build_the_config_only_with_dedup() -> None:
    assert STAGE.config_from_cli is not None
    assert STAGE.config_from_cli({"dedup": False, "dedup_scope": "user"}) is None
    config = STAGE.config_from_cli({"dedup": True, "dedup_scope": "user", "dedup_keep": "longest"})
    assert config == ExactDedupConfig(scope="user", keep="longest")


def test_keys_computed_in_slices_find_copies_across_slice_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    from ftdata.stages import exact_dedup

    examples = [chat(f"Question {i % 5}?", f"Answer {i % 5}.", SYSTEM) for i in range(23)]
    examples[7] = chat("QUESTION 2?", "answer  2.", SYSTEM)  # a normalised copy of rows 2, 12, 17, 22
    whole_kept, whole_rejected, _ = dedup(frame_of(examples))
    monkeypatch.setattr(exact_dedup, "KEY_SLICE_ROWS", 3)  # 8 slices, 4 batches of 2, the last one short
    kept, rejected, stats = dedup(frame_of(examples))
    assert lines(kept) == lines(whole_kept) == [1, 2, 3, 4, 5]
    assert lines(rejected) == lines(whole_rejected) == list(range(6, 24))
    assert stats["duplicates"] == 18 and stats["groups"] == 5
