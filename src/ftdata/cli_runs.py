"""`ftdata train <trainer>` (commands contributed by trainer plugins) and `ftdata runs`."""

from __future__ import annotations

from typing import Any

import click

from ftdata.cli import UserError, json_option, store_of, with_store
from ftdata.output import emit_json


class TrainGroup(click.Group):
    """Subcommands come from the registered trainers, loaded on first use."""

    def _trainers(self) -> dict[str, Any]:
        from ftdata import plugins

        return plugins.trainers()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._trainers())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        trainer = self._trainers().get(cmd_name)
        if trainer is None:
            return None
        trainer.command.name = cmd_name
        return with_store(trainer.command)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name is not None and not name.startswith("-") and self.get_command(ctx, name) is None:
            known = ", ".join(self.list_commands(ctx)) or "none installed (pip install plugins/ftdata-openai or plugins/ftdata-lora)"
            raise click.UsageError(f"no trainer {name!r} (trainers: {known})", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=TrainGroup)
def train() -> None:
    """Train a model from a dataset version with a trainer plugin (ftdata train TRAINER DATASET@VERSION)."""


@click.group(invoke_without_command=True)
@click.option("--dataset", default=None, help="Only runs made from this dataset.")
@json_option
@click.pass_context
def runs(ctx: click.Context, dataset: str | None, as_json: bool) -> None:
    """List training runs (which dataset version made which model); subcommands show/watch/cancel."""
    if ctx.invoked_subcommand is not None:
        return
    from ftdata.runs import list_runs

    records = list_runs(store_of(ctx), dataset)
    if as_json:
        emit_json(records)
        return
    if not records:
        click.echo("no runs", err=True)
    for r in records:
        model = r.get("model") or r.get("fine_tuned_model") or r.get("output_dir") or ""
        click.echo(f"{r['run_id']}  {r['trainer']}  {r['dataset']}@{r['version']}  {r.get('status')}  {model}")


@runs.command("show")
@click.argument("run_id")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str) -> None:
    """Print a run record as JSON."""
    from ftdata.runs import load_run

    emit_json(load_run(store_of(ctx), run_id))


def trainer_action(ctx: click.Context, run_id: str, action: str) -> dict[str, Any]:
    from ftdata import plugins
    from ftdata.runs import load_run

    store = store_of(ctx)
    record = load_run(store, run_id)
    trainer = plugins.get("trainer", record["trainer"])
    fn = getattr(trainer, action)
    if fn is None:
        raise UserError(f"trainer {trainer.name!r} cannot {action} runs")
    return fn(store, record)


@runs.command("watch")
@click.argument("run_id")
@click.pass_context
def runs_watch(ctx: click.Context, run_id: str) -> None:
    """Follow a run until it ends (e.g. after a disconnect)."""
    record = trainer_action(ctx, run_id, "watch")
    click.echo(f"{record['run_id']}: {record.get('status')}")


@runs.command("cancel")
@click.argument("run_id")
@click.pass_context
def runs_cancel(ctx: click.Context, run_id: str) -> None:
    """Cancel a running job."""
    record = trainer_action(ctx, run_id, "cancel")
    click.echo(f"{record['run_id']}: {record.get('status')}")


for _command in (runs_show, runs_watch, runs_cancel):
    with_store(_command)
