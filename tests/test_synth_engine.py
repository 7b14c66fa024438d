"""The local decode engine for real (bundled SmolLM2-135M-Instruct, CPU): continuous batching must not
change a single greedy token, and the shortlist sampler keeps exactly top-p's tokens."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ftdata.models import BUNDLED_NAME, resolve_model  # noqa: E402
from ftdata.synth import engine  # noqa: E402
from ftdata.synth.base import GenerationRequest, GenerationSettings  # noqa: E402
from ftdata.synth.decode import SHORTLIST, Sampler  # noqa: E402
from ftdata.synth.local_generator import LoadedModel  # noqa: E402

SYSTEM = {"role": "system", "content": "You are a concise support assistant for an invoicing app."}
QUESTIONS = [
    "Hi?", "How do I change my logo?",
    "My client says the payment link from last week's invoice does not open and shows an error page, what "
    "can I do about it before the due date passes?",
    "Export?", "Can I add a discount line to an invoice and still show VAT on the full amount?", "Why twice?",
    "Where are my drafts?", "How do I delete a client who has old invoices?", "Is there an API?",
]
CAP = 24


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    torch.set_num_threads(2)
    return LoadedModel(resolve_model(BUNDLED_NAME), "cpu", torch.float32)


@pytest.mark.slow
def test_greedy_replies_do_not_depend_on_batching(loaded: LoadedModel) -> None:
    requests = [GenerationRequest([SYSTEM, {"role": "user", "content": q}], seed=i) for i, q in enumerate(QUESTIONS)]
    settings = GenerationSettings(model=BUNDLED_NAME, max_new_tokens=CAP, temperature=0)
    alone = [engine.generate(loaded, [r], settings, 1, 0.95, 1.1)[0] for r in requests]
    tok = loaded.tokenizer
    ids = [tok(tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False),
               add_special_tokens=False)["input_ids"] for r in requests]
    shared = engine.shared_prefix_length(ids)
    assert shared > 0 and len(engine.length_groups([len(i) - shared for i in ids])) > 1  # prompts read in groups
    # One row at a time through one running batch: a step per token but each reply's last, and the cache
    # (2 x (longest prompt + cap) positions, starting at the longest prompt) fills up, so columns are cut
    # from the left. 3 rows: requests are admitted as others end.
    longest = max(len(i) for i in ids)
    assert sum(r.tokens_out for r in alone) - len(requests) >= longest + 2 * CAP
    for rows in (len(requests), 3, 1):
        ended = []
        together = engine.generate(loaded, requests, settings, rows, 0.95, 1.1, on_reply=lambda: ended.append(1))
        assert [(r.text, r.tokens_out, r.finish_reason) for r in together] == [
            (r.text, r.tokens_out, r.finish_reason) for r in alone]
        assert len(ended) == len(requests)
    assert all(r.tokens_out > 0 and r.text for r in alone)


def test_shortlist_nucleus_is_top_p_over_the_whole_vocabulary() -> None:
    from transformers.generation.logits_process import TopPLogitsWarper

    generator = torch.Generator().manual_seed(0)
    # Peaked rows (nucleus inside the shortlist) and flat ones (nucleus far past it).
    logits = torch.cat([torch.randn(6, 5000, generator=generator) * 8, torch.randn(2, 5000, generator=generator)])
    sampler = Sampler(temperature=1.0, top_p=0.9, repetition_penalty=1.0, end_ids=[0])
    history = torch.zeros((8, 1), dtype=torch.long)
    allowed = TopPLogitsWarper(0.9)(history, logits.clone()) > float("-inf")
    assert allowed[:6].sum(dim=1).max() < SHORTLIST < allowed[6:].sum(dim=1).min()
    torch.manual_seed(0)
    drawn = torch.stack([sampler(history, logits) for _ in range(300)])
    assert bool(allowed.gather(1, drawn.T).all())  # never a token top-p drops
    assert all(len(set(drawn[:, row].tolist())) > 1 for row in range(8))  # and it samples
