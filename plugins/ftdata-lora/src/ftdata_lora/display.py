"""Human output on stderr (rich): the preflight table, the marked example, the run summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ftdata_lora.device import DevicePlan
from ftdata_lora.preflight import Preflight

TEMPLATE_SOURCES = {
    "model": "the model's own (it has {% generation %} markers)",
    "trl": "TRL's training version of the model's template",
    "ftdata-chatml": "ftdata's marked ChatML (renders exactly as the model's own template)",
}
TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"


def template_description(source: str) -> str:
    if source.startswith("option:"):
        return f"{source.removeprefix('option:')} (-o chat_template)"
    return TEMPLATE_SOURCES.get(source, source)


def print_preflight(console: Console, ref: str, base_name: str, plan: DevicePlan, pre: Preflight) -> None:
    table = Table(title=f"Preflight: {ref} on {base_name}", title_justify="left", show_edge=False, pad_edge=False)
    for name in ("split", "rows", "tokens median", "p95", "max", f"> {pre.max_length}", "answer cut",
                 "fully masked", "trained tokens"):
        if name == "split":
            table.add_column(name, no_wrap=True)
        else:
            table.add_column(name, justify="right")
    for name, split in pre.splits.items():
        d = split.as_dict()
        tokens = d["tokens"]
        table.add_row(
            name, f"{d['examples']:,}", f"{tokens['median']:g}", f"{tokens['p95']:,}", f"{tokens['max']:,}",
            f"{d['over_max_length']:,}", f"{d['trained_tokens_cut']:,}", f"{sum(d['fully_masked'].values()):,}",
            f"{d['trained_tokens']:,}",
        )
    console.print(table)
    console.print(f"device: {plan.describe()}", soft_wrap=True)
    console.print(f"chat template: {template_description(pre.template_source)}", soft_wrap=True)
    for name, split in pre.splits.items():
        masked = {k: v for k, v in split.as_dict()["fully_masked"].items() if v}
        if masked:
            reasons = ", ".join(f"{reason} {n}" for reason, n in masked.items())
            count = sum(masked.values())
            console.print(f"[yellow]{name}: {count} examples train no token and are left out ({reasons})[/]",
                          soft_wrap=True)
    if not pre.stop_token_trained:
        console.print("[yellow]the template leaves the end-of-turn token out of the loss: "
                      "the model may not learn to stop[/]", soft_wrap=True)
    for problem in pre.blocking_problems():
        console.print(Text(problem, style="red"), soft_wrap=True)
    if pre.example:
        console.print(f"\nOne train example; trained tokens between {TRAINED_OPEN} {TRAINED_CLOSE}, "
                      "struck-through text is cut by max_length:", soft_wrap=True)
        console.print(marked_text(pre.example), soft_wrap=True)


def marked_text(segments: list[dict[str, Any]]) -> Text:
    text = Text()
    for segment in segments:
        style = "strike dim" if segment["cut"] else ""
        if segment["trained"]:
            text.append(TRAINED_OPEN + segment["text"] + TRAINED_CLOSE, style=(style + " bold green").strip())
        else:
            text.append(segment["text"], style=style or "dim")
    return text


def print_summary(console: Console, record: dict[str, Any]) -> None:
    metrics = record.get("metrics", {})
    console.print(f"[bold]{record['run_id']}[/] {record['status']} after {metrics.get('global_step')} steps")
    if metrics.get("initial_eval_loss") is not None:
        console.print(
            f"validation loss {metrics['initial_eval_loss']:.4f} → {metrics['final_eval_loss']:.4f} "
            f"(best {metrics.get('best_eval_loss') or metrics['final_eval_loss']:.4f})"
        )
    if metrics.get("seconds_per_step"):
        peak = metrics.get("peak_gpu_memory_bytes") or metrics.get("peak_rss_bytes") or 0
        console.print(
            f"{metrics['seconds_per_step']:.2f} s/step, {metrics['tokens_per_second']:,.0f} tokens/s, "
            f"peak memory {peak / 2**30:.1f} GiB"
        )
    if record.get("stopped_early"):
        console.print("stopped early: validation loss stopped improving")
    console.print(f"adapter: {record.get('adapter_dir')}")
    if record.get("merged_dir"):
        console.print(f"merged model: {record['merged_dir']}")
