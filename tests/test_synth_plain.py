"""Two-pass (plain text) generation, as used with small local models, driven by a scripted generator plugin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import polars as pl
from factories import chat

from ftdata import frame as F
from ftdata.stage import Context
from ftdata.synth.base import GenerationRequest, GenerationResult, GenerationSettings
from ftdata.synth.execute import CHUNK_BATCHES
from ftdata.synth.stage import SynthConfig, synthesize

SYSTEM = "You are the support assistant of Ledgerly."
ROWS = [
    ("How do I add my VAT number to invoices?", "Open Settings > Company, enter the VAT number and save."),
    ("Can I send an invoice in euros?", "Yes: pick the currency on the invoice itself before sending it."),
    ("How do I stop a recurring invoice?", "Open Recurring, choose the schedule and click Pause."),
]
QUESTIONS = {
    1: "Message: How can I export every invoice of 2024 to one spreadsheet?\nHope this helps!",
    2: "   ",
    3: "Why does the dashboard show my revenue in dollars instead of pounds sterling?",
    4: "Is there a way to attach a signed contract as a PDF to an estimate?",
}
ANSWERS = {
    1: "Open Reports > Invoices, pick 2024 and click Export CSV.",
    3: "Currency display follows the workspace. " * 6,
    4: "Yes: open the estimate, click Attach and choose the PDF, then",
}


class ScriptedModel:
    """A generator plugin whose replies are scripted per candidate (its request seed tells which)."""

    name = "scripted"
    batched = True
    structured = False

    def __init__(self, numbers: dict[int, int]) -> None:
        self.numbers = numbers  # request seed -> candidate number
        self.batches: list[list[GenerationRequest]] = []

    def default_model(self) -> str:
        return "script-1"

    def check(self, settings: GenerationSettings) -> None:
        return None

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings,
                 on_reply: Callable[[], None] | None = None) -> list[GenerationResult]:
        self.batches.append(list(requests))
        results = []
        for request in requests:
            # Pass 2 runs under the seeds' own system prompt, with the candidate's seed + 1.
            answering = request.messages[0]["content"].startswith(SYSTEM)
            number = self.numbers[request.seed - 1] if answering else self.numbers[request.seed]
            text = ANSWERS[number] if answering else QUESTIONS[number]
            for stop in request.stop:  # as an API does: the reply ends before the stop string
                text = text.split(stop, 1)[0]
            cut = answering and number == 4
            results.append(GenerationResult(text, "length" if cut else "stop", 50, settings.max_new_tokens if cut else 12))
        return results


def test_two_passes_question_then_answer_with_reasons(tmp_path: Path) -> None:
    frame = F.make_frame(
        {F.RECORD: F.canonical_json(chat(q, a, SYSTEM)), F.SOURCE: "s.jsonl", F.LINE: i + 1} for i, (q, a) in enumerate(ROWS)
    )
    from ftdata.synth.plan import collect_seeds, plan_candidates

    ctx = Context(seed=0, cache_dir=tmp_path)
    plan = plan_candidates(collect_seeds(frame), {}, 4, "self-instruct", 2, False, ctx.rng("synth"))
    model = ScriptedModel({c.request_seed: c.number for c in plan})
    result = synthesize(frame, SynthConfig(n=4, generator="scripted", k=2, batch_size=1, max_share=1.0), ctx, model)

    # One call of CHUNK_BATCHES x batch_size candidates: questions for all, then answers for those whose
    # question parsed (candidate 2's is empty).
    assert CHUNK_BATCHES * 1 == 4 and [len(b) for b in model.batches] == [4, 3]
    # The seeds' questions are one line each: new questions end at their first line break.
    assert [r.stop for r in model.batches[0]] == [("\n",)] * 4 and model.batches[1][0].stop == ()
    # Seeds have one sentence per question and per answer: so may the new ones, and pass 2 says so.
    assert [r.max_sentences for batch in model.batches for r in batch] == [1, 1, 1, 1, 1, 1, 1]
    assert model.batches[1][0].messages[0] == {"role": "system", "content": f"{SYSTEM}\n\nReply in at most 1 sentence."}
    rejected = {row[F.LINE]: row for row in result.rejected.iter_rows(named=True)}
    assert rejected[2][F.REASON] == "unparseable_output" and rejected[2][F.DETAIL] == "reply is empty"
    assert rejected[3][F.REASON] == "degenerate_repetition"
    assert rejected[3][F.RAW] == ANSWERS[3]
    # The answer cap is twice the seeds' answer length, at least 64 tokens.
    assert rejected[4][F.REASON] == "truncated" and rejected[4][F.DETAIL] == "reply hit its 64-token cap before it ended"
    [made] = result.kept.filter(pl.col(F.ORIGIN) == "synthetic:scripted:script-1").iter_rows(named=True)
    assert made[F.LINE] == 1
    assert orjson.loads(made[F.RECORD])["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "How can I export every invoice of 2024 to one spreadsheet?"},
        {"role": "assistant", "content": ANSWERS[1]},
    ]
