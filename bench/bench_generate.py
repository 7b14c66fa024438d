"""Throughput of the local generator: useful new tokens/s at batch 1, 8 and 32, in fp32 and bf16.

"Useful" tokens are the tokens a reply is made of (up to its end-of-sequence token or its last allowed
sentence). Prompts are the synth stage's own self-instruct answer prompts (two seed exchanges under the
opening of a system prompt and a length rule, then a question) with the stage's sentence limit, so prompt
and reply lengths are what `ftdata curate --synth` sees. `--engine generate` runs the same batches through
`model.generate` (a static batch: every row runs until the longest reply ends, no sentence limit) for
comparison with ftdata's decode loop, which drops each row from the batch when its reply ends.

    python bench/bench_generate.py                    # bundled SmolLM2-135M-Instruct, CPU threads = cores
    python bench/bench_generate.py --batches 1 8 --max-new-tokens 64 --model path/or/hf-id

Measured on the 2-core dev machine (no AMX, fp32, load average 1.35 before): 24.6 / 71.3 / 102.5 / 107.5
useful tokens/s at batch 1 / 8 / 32 / 64 (`loop`), 119.0 at batch 32 `continuous`; the previous session's
loop 21 / 51 / 80 / 86, `model.generate` 25 / 40 / 54 at 1 / 8 / 32 (see bench/README.md).

Other processes on the machine change the numbers a lot (2 threads fell 5-10x here with the other core
busy): the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

from ftdata.synth.base import GenerationRequest, GenerationResult, GenerationSettings
from ftdata.synth.execute import sentence_limit
from ftdata.synth.local_generator import (
    REPETITION_PENALTY,
    TOP_P,
    LoadedModel,
    available_cores,
    cpu_has_amx,
    cpu_supports_bf16,
)
from ftdata.synth.prompts import SeedExample, self_instruct_answer

SYSTEM = "You are the support assistant of Ledgerly, an invoicing app for small businesses. Be brief and concrete."
SEEDS = [
    ("How do I add my VAT number to invoices?", "Open Settings > Company, enter the VAT number and save; every invoice from then on shows it."),
    ("Can I send an invoice in euros when my account is in dollars?", "Yes: pick the currency on the invoice itself. Reports convert it at that day's rate."),
    ("A client says the payment link doesn't work.", "Links expire after 30 days. Open the invoice, click Resend and the client gets a fresh link."),
    ("How do I stop a recurring invoice?", "Open Recurring, choose the schedule and click Pause or Delete; invoices already sent are kept."),
]
QUESTIONS = [
    "How can I change the logo on my invoices?", "Why did my client get the reminder twice?",
    "Can I export all invoices from last year as PDF?", "How do I give my accountant read-only access?",
    "What happens to unpaid invoices when I downgrade my plan?", "Can I add a discount line to an invoice?",
    "How do I mark an invoice as paid in cash?", "Is there a way to translate invoices into German?",
]


def requests_for(batch: int) -> list[GenerationRequest]:
    seeds = [SeedExample(str(i), SYSTEM, q, a, None) for i, (q, a) in enumerate(SEEDS)]
    sentences = sentence_limit([a for _, a in SEEDS])
    return [
        GenerationRequest(self_instruct_answer(seeds[i % 3: i % 3 + 2], QUESTIONS[i % len(QUESTIONS)], sentences),
                          seed=1000 + i, max_sentences=sentences)
        for i in range(batch)
    ]


def loop(loaded: LoadedModel, requests: list[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
    """ftdata's engine with the whole list as one batch (rows leave as their replies end)."""
    from ftdata.synth import engine

    return engine.generate(loaded, requests, settings, len(requests), TOP_P, REPETITION_PENALTY)


def continuous(loaded: LoadedModel, requests: list[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
    """ftdata's engine as the synth stage runs it: 4x the batch size in one call, `batch` rows at a time."""
    from ftdata.synth import engine

    more = [replace(r, seed=r.seed + 100_000 * k) for k in range(4) for r in requests]
    return engine.generate(loaded, more, settings, len(requests), TOP_P, REPETITION_PENALTY)


def static_generate(loaded: LoadedModel, requests: list[GenerationRequest], settings: GenerationSettings) -> list[GenerationResult]:
    """The same batch through `model.generate`: useful tokens counted up to each row's end-of-sequence."""
    import torch

    tok = loaded.tokenizer
    prompts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests]
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
    torch.manual_seed(requests[0].seed)
    with torch.inference_mode():
        output = loaded.model.generate(**batch, max_new_tokens=settings.max_new_tokens, do_sample=True,
                                       temperature=settings.temperature, top_p=TOP_P,
                                       repetition_penalty=REPETITION_PENALTY, pad_token_id=tok.pad_token_id)
    results = []
    for tokens in output[:, batch["input_ids"].shape[1]:].tolist():
        end = next((i for i, t in enumerate(tokens) if t in loaded.eos_ids), None)
        results.append(GenerationResult("", "length" if end is None else "stop", 0, len(tokens) if end is None else end + 1))
    return results


def main(argv: list[str] | None = None) -> int:
    import torch

    from ftdata.models import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF path or id (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--engines", nargs="+", default=["loop", "continuous"], choices=["loop", "continuous", "generate"],
                        help="loop: ftdata's engine, one static batch; continuous: 4x the batch size through `batch` "
                             "rows (what the synth stage runs); generate: model.generate")
    parser.add_argument("--threads", type=int, default=available_cores())
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = resolve_model(args.model)
    print(f"model {args.model or 'bundled SmolLM2-135M-Instruct'} on {device}, {args.threads} threads, "
          f"cpu bf16 kernels {'yes' if cpu_supports_bf16() else 'no'}, AMX {'yes' if cpu_has_amx() else 'no'}, "
          f"torch {torch.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    settings = GenerationSettings(model=path, temperature=0.8, max_new_tokens=args.max_new_tokens)
    print(f"{'engine':>8} {'dtype':>5} {'batch':>5} {'replies':>7} {'new tok':>8} {'ended':>5} {'seconds':>8} {'tok/s':>7}")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    engines = {"loop": loop, "continuous": continuous, "generate": static_generate}
    for engine, name in [(engine, name) for name in args.dtypes for engine in args.engines]:
        run = engines[engine]
        loaded = LoadedModel(path, device, dtypes[name])
        run(loaded, requests_for(2), GenerationSettings(model=path, max_new_tokens=4))  # warm-up
        for batch in args.batches:
            # Batch 1 replies vary in length: average a few.
            rounds = 3 if batch == 1 else 1
            tokens = ended = replies = 0
            started = time.perf_counter()
            for r in range(rounds):
                requests = requests_for(batch) if r == 0 else requests_for(batch + r)[r:]
                results = run(loaded, requests, settings)
                tokens += sum(res.tokens_out for res in results)
                ended += sum(res.finish_reason != "length" for res in results)
                replies += len(results)
            seconds = time.perf_counter() - started
            print(f"{engine:>8} {name:>5} {batch:>5} {replies:>7} {tokens:>8} {ended:>5} {seconds:>8.1f} {tokens / seconds:>7.1f}",
                  flush=True)
        del loaded
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
