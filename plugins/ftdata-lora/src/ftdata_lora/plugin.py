"""Plugin registration: `ftdata train lora` (a Trainer) and `ftdata generate` (an extra command).

Only click and ftdata's contracts are imported here; torch, transformers, trl and peft load when a
command runs, so `ftdata --help` and `ftdata plugins` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ftdata.hookspecs import hookimpl
from ftdata.store import Store
from ftdata.trainers import Trainer

EXIT_OPERATIONAL, EXIT_USAGE, EXIT_DATA = 1, 2, 3


class CommandError(click.ClickException):
    """A plain `error: ...` line and an exit code (1 operational, 2 usage, 3 data check failed)."""

    def __init__(self, message: str, exit_code: int = EXIT_OPERATIONAL) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def context_store(ctx: click.Context, explicit: str | None = None) -> Store:
    if explicit is not None:
        return Store(explicit)
    obj = ctx.find_root().obj
    return (obj or {}).get("store") or Store()


def plain_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the plugin's and ftdata's known errors into `CommandError`s with the right exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ftdata.models import ModelNotAvailable
        from ftdata.store import StoreError

        from ftdata_lora.device import DeviceError
        from ftdata_lora.generate import GenerateError
        from ftdata_lora.options import OptionsError
        from ftdata_lora.templates import TemplateError
        from ftdata_lora.train import DataProblem, LoraError

        try:
            return fn(*args, **kwargs)
        except (OptionsError, DeviceError) as exc:
            raise CommandError(str(exc), EXIT_USAGE) from None
        except DataProblem as exc:
            raise CommandError(str(exc), EXIT_DATA) from None
        except (LoraError, TemplateError, GenerateError, StoreError, ModelNotAvailable) as exc:
            raise CommandError(str(exc)) from None

    return wrapper


@click.command("lora")
@click.argument("ref", metavar="DATASET@VERSION")
@click.option("--base-model", default=None, metavar="PATH|ID",
              help="Base model: a local directory or a Hugging Face id (default: the bundled SmolLM2-135M-Instruct).")
@click.option("-o", "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
              help="Training option, repeatable: r, alpha, dropout, target_modules, epochs, lr, batch_size, "
                   "grad_accum, max_length, eval_steps, early_stopping_patience, save_total_limit, precision, ...")
@click.option("--qlora", is_flag=True, help="Load the base in 4-bit (bitsandbytes NF4; CUDA only).")
@click.option("--merge", is_flag=True, help="Also save the adapter merged into an unquantised copy of the base.")
@click.option("--resume", is_flag=True, help="Continue the newest run of this version from its last checkpoint.")
@click.option("--resume-from", default=None, metavar="RUN_ID", help="Continue this run from its last checkpoint.")
@click.option("--dry-run", is_flag=True, help="Preflight only: render, count tokens, report truncation; no training.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: <store>/runs/<run-id>/).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after N optimizer steps.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (preflight or run record).")
@click.option("-s", "--silent", is_flag=True, help="No progress or tables on stderr.")
@click.pass_context
@plain_errors
def train_command(ctx: click.Context, ref: str, base_model: str | None, option_pairs: tuple[str, ...], qlora: bool,
                  merge: bool, resume: bool, resume_from: str | None, dry_run: bool, output: Path | None,
                  max_steps: int | None, as_json: bool, silent: bool) -> None:
    """Fine-tune a LoRA adapter on DATASET@VERSION with TRL's SFTTrainer (loss on assistant tokens only).

    Several GPUs: accelerate launch "$(command -v ftdata)" train lora DATASET@VERSION --output DIR
    """
    from ftdata.output import emit_json, stderr_console

    from ftdata_lora.display import print_preflight, print_summary
    from ftdata_lora.train import TrainRequest, prepare, train

    console = stderr_console(silent)
    request = TrainRequest(
        ref=ref, store=context_store(ctx), option_pairs=option_pairs, base_model=base_model, qlora=qlora,
        merge=merge, resume=resume, resume_from=resume_from, output=output, max_steps=max_steps,
    )
    if dry_run:
        prepared = prepare(request)
        print_preflight(console, prepared.version.ref, prepared.base_name, prepared.plan, prepared.preflight)
        if as_json:
            emit_json({"ref": prepared.version.ref, "base_model": prepared.base_name,
                       "device": prepared.plan.as_record(), **prepared.preflight.as_dict()})
        if prepared.preflight.blocking_problems():
            raise click.exceptions.Exit(EXIT_DATA)
        return
    record = train(request, say=lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True))
    print_summary(console, record)
    if as_json:
        emit_json(record)
    else:
        click.echo(record["run_id"])


@click.command("generate")
@click.argument("run_id")
@click.argument("prompts", nargs=-1)
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default=None,
              help="Answer the conversations of this split of the run's dataset version instead of PROMPTS.")
@click.option("--limit", type=click.IntRange(min=1), default=5, show_default=True,
              help="Conversations taken from --split.")
@click.option("--compare", is_flag=True, help="Also show the base model's answer, without the adapter.")
@click.option("--system", default=None,
              help="System message sent before each prompt "
                   "(default: the one the train examples start with; \"\" for none).")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--store", "store_dir", type=click.Path(file_okay=False), default=None, envvar="FTDATA_STORE",
              help="Store directory (default ./datasets, or $FTDATA_STORE).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_context
@plain_errors
def generate_command(ctx: click.Context, run_id: str, prompts: tuple[str, ...], split: str | None, limit: int,
                     compare: bool, system: str | None, max_new_tokens: int, store_dir: str | None,
                     as_json: bool) -> None:
    """Answer PROMPTS (or a split's conversations) with a LoRA run's base model + adapter."""
    from ftdata.output import emit_json

    from ftdata_lora.generate import generate

    if not prompts and split is None:
        raise CommandError('give a prompt (ftdata generate RUN_ID "question") or --split test', EXIT_USAGE)
    if prompts and split is not None:
        raise CommandError("give prompts or --split, not both", EXIT_USAGE)
    results = generate(context_store(ctx, store_dir), run_id, list(prompts), split, limit, compare,
                       max_new_tokens, system)
    if as_json:
        emit_json(results)
        return
    for result in results:
        click.echo(f"prompt:    {result['prompt']}")
        click.echo(f"adapter:   {result['answer']}")
        if "base_answer" in result:
            click.echo(f"base:      {result['base_answer']}")
        if "reference" in result:
            click.echo(f"reference: {result['reference']}")
        click.echo("")


TRAINER = Trainer(
    name="lora",
    command=train_command,
    description="LoRA / QLoRA fine-tuning on a local GPU or CPU (TRL SFTTrainer + peft)",
)


@hookimpl
def register_trainers(register: Callable[[Any], None]) -> None:
    register(TRAINER)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(generate_command)
