"""Throughput of the local generator: useful new tokens/s at batch 1, 8 and 32, in fp32 and bf16.

"Useful" tokens are a reply's tokens up to and including its end-of-sequence token; the padding a
finished row keeps producing while the rest of its batch runs is not counted. Prompts are the synth
stage's own self-instruct answer prompts (three seed exchanges under a system prompt, then a question),
so prompt length and reply length are what `ftdata curate --synth` sees.

    python bench/bench_generate.py                    # bundled SmolLM2-135M-Instruct, CPU threads = cores
    python bench/bench_generate.py --batches 1 8 --max-new-tokens 64 --model path/or/hf-id

Other processes on the machine change the numbers a lot (2 threads fell 5-10x here with the other core
busy): the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ftdata.synth.base import GenerationRequest, GenerationSettings
from ftdata.synth.local_generator import LoadedModel, available_cores, cpu_has_amx, cpu_supports_bf16, generate_batch
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
    return [
        GenerationRequest(self_instruct_answer(seeds[i % 2: i % 2 + 3], QUESTIONS[i % len(QUESTIONS)]), seed=1000 + i)
        for i in range(batch)
    ]


def main(argv: list[str] | None = None) -> int:
    import torch

    from ftdata.models import resolve_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="HF path or id (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
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
    print(f"{'dtype':>5} {'batch':>5} {'replies':>7} {'new tok':>8} {'ended':>5} {'seconds':>8} {'tok/s':>7}")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    for name in args.dtypes:
        loaded = LoadedModel(path, device, dtypes[name])
        generate_batch(loaded, requests_for(2), GenerationSettings(model=path, max_new_tokens=4))  # warm-up
        for batch in args.batches:
            # Batch 1 replies vary in length: average a few.
            rounds = 3 if batch == 1 else 1
            tokens = ended = replies = 0
            started = time.perf_counter()
            for r in range(rounds):
                requests = requests_for(batch) if r == 0 else requests_for(batch + r)[r:]
                results = generate_batch(loaded, requests, settings)
                tokens += sum(res.tokens_out for res in results)
                ended += sum(res.finish_reason == "stop" for res in results)
                replies += len(results)
            seconds = time.perf_counter() - started
            print(f"{name:>5} {batch:>5} {replies:>7} {tokens:>8} {ended:>5} {seconds:>8.1f} {tokens / seconds:>7.1f}",
                  flush=True)
        del loaded
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
