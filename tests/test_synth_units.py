"""Planning, prompts, reply parsing, repetition detection and the cache of the synth stage."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from ftdata import frame as F
from ftdata.synth import prompts
from ftdata.synth.base import GenerationRequest, GenerationResult, GenerationSettings
from ftdata.synth.cache import GenerationCache, generation_key
from ftdata.synth.execute import sentence_limit, style_cap
from ftdata.synth.plan import SEED_MAX_CHARS, collect_seeds, plan_candidates
from ftdata.synth.prompts import SeedExample, UnparseableOutput
from ftdata.synth.quality import repetition_problem, sentence_count, sentence_end
from ftdata.synth.screen import allowed_synthetic

SYSTEM = "You are the support assistant of Acme Cloud."


def seeds_by_label(counts: dict[str, int]) -> list[SeedExample]:
    return [
        SeedExample(f"{label}-{i}", SYSTEM, f"{label} question {i}?", f"{label} answer {i}.", label)
        for label, n in counts.items()
        for i in range(n)
    ]


def test_balance_spends_on_the_smallest_labels_first() -> None:
    seeds = seeds_by_label({"billing": 3, "login": 3, "refunds": 3})
    counts = {"billing": 10, "login": 4, "refunds": 6}
    plan = plan_candidates(seeds, counts, 8, "self-instruct", 2, True, random.Random(0))
    # login (4) gets two to reach refunds (6); then they alternate until both reach billing's 10 ...
    assert [c.label for c in plan] == ["login", "login", "login", "refunds", "login", "refunds", "login", "refunds"]
    assert [c.number for c in plan] == list(range(1, 9))
    for candidate in plan:
        assert len(candidate.seeds) == 2 and {s.label for s in candidate.seeds} == {candidate.label}


def test_without_balance_labels_follow_the_data() -> None:
    seeds = seeds_by_label({"billing": 8, "login": 2})
    plan = plan_candidates(seeds, {"billing": 8, "login": 2}, 400, "self-instruct", 3, False, random.Random(1))
    share = Counter(c.label for c in plan)["billing"] / 400
    assert 0.72 < share < 0.88


def test_plan_is_prefix_stable_so_a_larger_n_reuses_the_cache() -> None:
    seeds = seeds_by_label({"billing": 4, "login": 3})
    for balance in (False, True):
        small = plan_candidates(seeds, {}, 5, "self-instruct", 3, balance, random.Random(7))
        large = plan_candidates(seeds, {}, 12, "self-instruct", 3, balance, random.Random(7))
        assert large[:5] == small


def test_paraphrase_uses_every_seed_once_before_any_twice() -> None:
    seeds = seeds_by_label({"billing": 5})
    plan = plan_candidates(seeds, {}, 10, "paraphrase", 3, False, random.Random(3))
    first, second = [c.seeds[0].row_id for c in plan[:5]], [c.seeds[0].row_id for c in plan[5:]]
    assert sorted(first) == sorted(second) == sorted(s.row_id for s in seeds)


def test_seeds_come_from_human_chat_rows_with_a_text_exchange() -> None:
    good = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi?"},
                         {"role": "assistant", "content": "Hello."}]}
    tool = {"messages": [{"role": "user", "content": "Weather?"},
                         {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                               "function": {"name": "w", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                         {"role": "assistant", "content": "Sunny."}]}
    frame = F.make_frame([
        {F.RECORD: F.canonical_json(good), F.SOURCE: "a", F.LINE: 1, F.LABEL: "greet"},
        {F.RECORD: F.canonical_json(tool), F.SOURCE: "a", F.LINE: 2},
        {F.RECORD: F.canonical_json(good), F.SOURCE: "a", F.LINE: 3, F.ORIGIN: "synthetic:local:m"},
    ])
    seeds = collect_seeds(frame)
    assert seeds == [SeedExample(F.row_id(F.canonical_json(good)), SYSTEM, "Hi?", "Hello.", "greet")]
    long_row = {F.RECORD: F.canonical_json(chat_record("Why?", "x" * SEED_MAX_CHARS)), F.SOURCE: "a", F.LINE: 4}
    assert len(collect_seeds(pl.concat([frame, F.make_frame([long_row])]))) == 1


def chat_record(user: str, assistant: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def test_style_cap_follows_the_seeds_and_stays_within_limits() -> None:
    answers = ["a" * 400] * 19 + ["b" * 100_000]  # one outlier: the 95th percentile ignores it
    assert style_cap(answers, 256, 96) == 200  # 400 bytes ~ 100 tokens, twice that
    assert style_cap(["short"], 256, 96) == 96
    assert style_cap(["a" * 3000], 256, 96) == 256
    assert style_cap([], 256, 96) == 256


def test_a_long_system_prompt_is_cut_to_its_opening_sentences() -> None:
    system = "You are Ledgerly's support assistant. " * 5 + "Never ask for passwords. " * 20
    seeds = [SeedExample("a", system, "Q?", "A.", None)]
    shown = prompts.self_instruct_answer(seeds, "New?", None)[0]["content"]
    assert shown == ("You are Ledgerly's support assistant. " * 5 + "Never ask for passwords. " * 8).strip()
    assert len(shown) <= prompts.PLAIN_SYSTEM_CHARS
    assert prompts.self_instruct_answer([SeedExample("b", None, "Q?", "A.", None)], "New?", 2)[0] == {
        "role": "system", "content": "Reply in at most 2 sentences."}


@pytest.mark.parametrize(
    ("text", "count", "first_end"),
    [
        ("Open Settings. Then click Save.", 2, 14),
        ("Go to Billing, e.g. from the menu. Done!", 2, 34),
        ("It costs 2.5 USD per seat. Steps:\n1. Open Plans\n2. Pick one", 2, 26),
        ('She said "thanks." Then left', 2, 18),
        ("Why was I charged twice?", 1, None),
        ("   ", 0, None),
    ],
)
def test_sentences_end_at_closing_punctuation_before_a_space(text: str, count: int, first_end: int | None) -> None:
    assert sentence_count(text) == count
    assert sentence_end(text, 1) == first_end


def test_sentence_limit_is_the_seeds_95th_percentile() -> None:
    answers = ["One. Two."] * 19 + ["One. Two. Three. Four. Five. Six."]
    assert sentence_limit(answers) == 2
    assert sentence_limit(["No punctuation at all"]) == 1
    assert sentence_limit([]) is None


def test_parse_json_fields_accepts_fenced_json_and_names_what_is_missing() -> None:
    assert prompts.parse_json_fields('```json\n{"user": " Hi ", "assistant": "Yo"}\n```', ("user", "assistant")) == {
        "user": "Hi", "assistant": "Yo"}
    with pytest.raises(UnparseableOutput, match="not JSON"):
        prompts.parse_json_fields("Sure! Here is an example: user asks...", ("user",))
    with pytest.raises(UnparseableOutput, match="field 'assistant' is missing"):
        prompts.parse_json_fields('{"user": "Hi"}', ("user", "assistant"))
    with pytest.raises(UnparseableOutput, match="field 'user' is empty"):
        prompts.parse_json_fields('{"user": "  ", "assistant": "x"}', ("user", "assistant"))
    with pytest.raises(UnparseableOutput, match="not an object"):
        prompts.parse_json_fields('["Hi"]', ("user",))


def test_clean_plain_reply_strips_labels_and_wrapping_quotes() -> None:
    assert prompts.clean_plain_reply('  Message: "Why was I charged twice?"  ') == "Why was I charged twice?"
    assert prompts.clean_plain_reply('He said "no" twice.') == 'He said "no" twice.'
    assert prompts.clean_plain_reply('I need my address changed, please?"') == "I need my address changed, please?"
    with pytest.raises(UnparseableOutput, match="empty"):
        prompts.clean_plain_reply('  ""  ')


def test_plain_prompts_show_the_seeds_as_turns() -> None:
    seeds = seeds_by_label({"billing": 2})
    question = prompts.self_instruct_question(seeds, "billing")
    assert [m["role"] for m in question] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert question[2]["content"] == "billing question 0?" and question[-1]["content"] == "Write a new message about billing."
    answer = prompts.self_instruct_answer(seeds, "New question?", 3)
    assert answer[0] == {"role": "system", "content": f"{SYSTEM}\n\nReply in at most 3 sentences."}
    assert answer[1:5] == [{"role": "user", "content": "billing question 0?"}, {"role": "assistant", "content": "billing answer 0."},
                           {"role": "user", "content": "billing question 1?"}, {"role": "assistant", "content": "billing answer 1."}]
    assert answer[-1] == {"role": "user", "content": "New question?"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I can help with that. " * 6, "repeats"),
        ("the " * 30, "repeats"),
        ("Please check your settings. Then restart the app now. " + "Please check your settings. Then restart the app now. "
         "Some other words follow here. Please check your settings. Then restart the app now.", "occurs 3 times"),
        ("Open Billing. Download the invoice. Open Billing. Download the invoice. Contact us soon please.", None),
        ("| Plan | Price |\n| --- | --- | --- | --- | --- | --- | --- |\n| Pro | 10 |", None),
        (("Go to Settings, choose Security and click Reset password. The link you get by email lasts one hour, "
          "and you can ask for a new one any time from the same page."), None),
    ],
)
def test_repetition_problem(text: str, expected: str | None) -> None:
    problem = repetition_problem(text)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_repeated_sentences_far_apart_are_a_loop() -> None:
    sentence = "Thank you for contacting our support team today."
    text = f"{sentence} Your invoice is attached below. {sentence} We will refund the charge soon. {sentence}"
    assert repetition_problem(text) == f"{sentence.lower()!r} occurs 3 times"


def test_cache_key_covers_what_decides_a_reply(tmp_path: Path) -> None:
    settings = GenerationSettings(model="m", temperature=0.5, max_new_tokens=64, batch_size=8, concurrency=2)
    request = GenerationRequest([{"role": "user", "content": "hi"}], seed=1)
    key = generation_key("openai", "m", settings, request)
    assert key == generation_key("openai", "m", GenerationSettings(model="m", temperature=0.5, max_new_tokens=64,
                                                                   batch_size=32, concurrency=9), request)
    assert key != generation_key("openai", "m", settings, GenerationRequest(request.messages, seed=2))
    assert key != generation_key("local", "m", settings, request)
    assert key != generation_key("openai", "m", GenerationSettings(model="m", temperature=0.6, max_new_tokens=64), request)
    cache = GenerationCache(tmp_path)
    assert cache.get(key) is None
    result = GenerationResult("hello", "stop", 10, 2, 0.001)
    cache.put(key, result)
    assert cache.get(key) == result
    (tmp_path / key[:2] / f"{key}.json").write_text("{trunc")
    assert cache.get(key) is None


def test_allowed_synthetic_share() -> None:
    def frame(human: int, synthetic: int) -> pl.DataFrame:
        rows = [{F.RECORD: f'{{"i":{i}}}', F.SOURCE: "a", F.LINE: i,
                 F.ORIGIN: "human" if i < human else "synthetic:x:y"} for i in range(human + synthetic)]
        return F.make_frame(rows)

    assert allowed_synthetic(frame(10, 0), 0.5) == 10
    assert allowed_synthetic(frame(10, 4), 0.5) == 6
    assert allowed_synthetic(frame(9, 0), 0.25) == 3  # 3 / (9 + 3) = 0.25
    assert allowed_synthetic(frame(10, 0), 0.2) == 2
    assert allowed_synthetic(frame(3, 5), 0.5) == 0
    assert allowed_synthetic(frame(10, 0), 1.0) is None


def test_generation_threads_stay_within_this_process_cores() -> None:
    from ftdata.synth.local_generator import available_cores, generation_threads

    threads = generation_threads()
    assert 1 <= threads <= available_cores()


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own() -> None:
    from ftdata.synth.engine import shared_prefix_length

    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[7, 8, 9]]) == 2
    assert shared_prefix_length([[1, 2], [3, 2]]) == 0


def test_chunks_are_even_so_no_batch_runs_nearly_empty() -> None:
    from ftdata.synth.execute import even_chunks

    plan = plan_candidates(seeds_by_label({"billing": 3}), {}, 200, "self-instruct", 2, False, random.Random(0))
    assert [len(c) for c in even_chunks(plan, 64)] == [50, 50, 50, 50]
    assert [len(c) for c in even_chunks(plan[:5], 2)] == [2, 2, 1]
    assert [c.number for chunk in even_chunks(plan, 64) for c in chunk] == list(range(1, 201))
    assert even_chunks([], 32) == []
