"""`ftdata curate`, `ftdata stages`, `ftdata plugins`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ftdata.cli import UsageProblem, json_option, silent_option, store_of
from ftdata.output import emit_json, fmt_int, stderr_console, table, top_reasons


class PluginOptionsCommand(click.Command):
    """A command whose options include those contributed by ingest and the registered stages.

    They are added on first parse, so listing commands (`ftdata --help`) does not import every stage.
    """

    _loaded = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._loaded:
            self._loaded = True
            from ftdata import plugins
            from ftdata.ingest import ingest_cli_options

            taken = {opt for p in self.params for opt in getattr(p, "opts", [])}
            extra: list[click.Parameter] = list(ingest_cli_options())
            for stage in plugins.stages().values():
                extra.extend(stage.cli_options)
            for param in extra:
                clash = taken & set(getattr(param, "opts", []))
                if clash:
                    raise RuntimeError(f"option {sorted(clash)} is declared twice (stage plugins clash)")
                taken |= set(getattr(param, "opts", []))
            self.params.extend(extra)
        return super().get_params(ctx)


@click.command(cls=PluginOptionsCommand)
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--name", "dataset", default=None, help="Dataset name in the store (default: first input's stem).")
@click.option("--recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML recipe: ordered stages with their configs (replaces stage flags).")
@click.option("--seed", type=int, default=None, help="The one seed all randomness derives from (default 0).")
@click.option("--workers", type=int, default=2, show_default=True, help="Processes for heavy stages.")
@click.option("--review-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply a review sheet (from `ftdata review`): new version from the reviewed one.")
@click.option("-o", "--option", "overrides", multiple=True, metavar="STAGE.KEY=VALUE",
              help="Set a stage option, e.g. -o near_dedup.threshold=0.6 (repeatable).")
@json_option
@silent_option
@click.pass_context
def curate(ctx: click.Context, inputs: tuple[str, ...], dataset: str | None, recipe: Path | None, seed: int | None,
           workers: int, review_file: Path | None, overrides: tuple[str, ...], as_json: bool, silent: bool,
           **params: Any) -> None:
    """Ingest INPUTS, run the curation stages, and write a new dataset version.

    Every input row ends up in a split or in rejected.jsonl with the stage and reason.
    """
    from ftdata import pipeline
    from ftdata.ingest import IngestOptions, ingest_options_from_cli
    from ftdata.output import RichProgress
    from ftdata.recipe import apply_overrides, build_steps, load_recipe, steps_from_cli

    console = stderr_console(silent or as_json)
    progress = RichProgress(console)
    store = store_of(ctx)
    try:
        if review_file is not None:
            if inputs or recipe:
                raise UsageProblem("--review-file makes a version from the reviewed one: give no inputs or recipe")
            from ftdata.synth.review import review_parent

            parent = store.resolve(review_parent(review_file))
            from ftdata.store import sha256_file

            steps = [("review", {"sheet": str(review_file), "sheet_sha256": sha256_file(review_file)})]
            result = pipeline.curate_from_version(parent, steps, store, seed=seed or 0, progress=progress, workers=workers)
        else:
            if not inputs:
                raise UsageProblem("give at least one input file (csv, jsonl, json, parquet)")
            all_params = dict(ctx.params)
            if recipe is not None:
                loaded = load_recipe(recipe)
                from ftdata import plugins

                stage_params = {p.name for st in plugins.stages().values() for p in st.cli_options}
                stage_flags = sorted(n for n in stage_params if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE)
                if stage_flags:
                    raise UsageProblem(f"--recipe replaces stage flags; move {stage_flags} into the recipe")
                steps_spec: list[Any] = loaded.steps
                ingest_options = IngestOptions(**{**ingest_options_from_cli(all_params).model_dump(exclude_defaults=True), **loaded.ingest})
                seed = seed if seed is not None else loaded.seed
                target_model = loaded.model or params.get("model") or pipeline.DEFAULT_MODEL
                dataset = dataset or loaded.name
            else:
                steps_spec = steps_from_cli(all_params)
                ingest_options = ingest_options_from_cli(all_params)
                target_model = params.get("model") or pipeline.DEFAULT_MODEL
            built = apply_overrides(build_steps(steps_spec), overrides)
            dataset = dataset or Path(inputs[0]).stem
            result = pipeline.curate(
                inputs, built, dataset=dataset, store=store, seed=seed or 0, target_model=target_model,
                ingest_options=ingest_options, workers=workers, progress=progress,
            )
    finally:
        progress.stop()
    summary = result.summary
    if as_json:
        emit_json(summary)
        return
    render_summary(console, result)
    click.echo(result.version.ref)


def render_summary(console: Any, result: Any) -> None:
    m = result.manifest
    if not result.created:
        console.print(f"[bold]{result.version.ref}[/] already exists (same inputs and recipe): nothing to do.")
        console.print(f"  {result.version.path}")
        return
    rows = [
        (r.name, fmt_int(r.rows_in), fmt_int(r.rows_out), fmt_int(sum(r.rejected_by_reason.values())),
         fmt_int(r.generated) if r.generated else "", top_reasons(r.rejected_by_reason),
         "in ingest" if r.fused else f"{r.seconds:.2f}")
        for r in result.reports
    ]
    console.print(table("Stages", ["stage", "in", "kept", "rejected", "generated", "reasons", "s"], rows,
                        right=("in", "kept", "rejected", "generated", "s")))
    split_rows = [
        (name, fmt_int(s["rows"]), fmt_int(s.get("tokens")), fmt_int(s.get("trained_tokens")), fmt_int(s.get("synthetic")))
        for name, s in sorted(m["splits"].items(), key=lambda kv: ("train", "validation", "test").index(kv[0])
                              if kv[0] in ("train", "validation", "test") else 9)
    ]
    console.print(table("Splits", ["split", "rows", "tokens", "trained tokens", "synthetic"], split_rows,
                        right=("rows", "tokens", "trained tokens", "synthetic")))
    labels = m.get("labels") or {}
    if labels.get("final") and list(labels["final"]) != ["(none)"]:
        # With balancing, "before" is what reached the balance stage (synthetic rows included).
        heading = "before balance" if labels.get("before") else "ingested"
        before = labels.get("before") or labels.get("ingested", {})
        names = sorted(set(before) | set(labels["final"]))
        console.print(table("Labels", ["label", heading, "final"],
                            [(n, fmt_int(before.get(n, 0)), fmt_int(labels["final"].get(n, 0))) for n in names],
                            right=(heading, "final")))
    cost = m.get("cost")
    if cost and cost.get("usd") is None:
        console.print(f"No price for {cost['model']} (local model): {fmt_int(cost['billed_tokens_per_epoch'])} "
                      f"tokens × {cost['epochs']} epochs")
    elif cost:
        console.print(
            f"Estimated training cost on {cost['model']}: [bold]${cost['usd']:.2f}[/] "
            f"({fmt_int(cost['billed_tokens_per_epoch'])} tokens × {cost['epochs']} epochs at "
            f"${cost['usd_per_1m']}/1M, prices as of {cost['prices_as_of']})"
        )
    totals = m["totals"]
    console.print(
        f"Version [bold]{result.version.ref}[/] written to {result.version.path}\n"
        f"{fmt_int(totals['input_rows'])} input rows → {fmt_int(totals['kept'])} kept, "
        f"{fmt_int(totals['rejected'])} rejected"
        + (f", {fmt_int(totals['generated'])} generated" if totals["generated"] else "")
        + f" ({result.seconds:.1f} s)"
    )
    if totals["rejected"]:
        console.print(f"Rejected rows and why: {result.version.path / 'rejected.jsonl'}")
        for reason, n in sorted(totals["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0])):
            console.print(f"  {n:>7,}  {reason}")


@click.command("stages")
@json_option
def stages_command(as_json: bool) -> None:
    """List the registered stages and their options."""
    from ftdata import plugins

    registry = plugins.stages()
    if as_json:
        emit_json([{"name": s.name, "version": s.version, "kind": s.kind, "order": s.order,
                    "description": s.description, "options": s.options_table(),
                    "flags": [p.opts[0] for p in s.cli_options]} for s in registry.values()])
        return
    for stage in sorted(registry.values(), key=lambda s: (s.order, s.name)):
        click.echo(f"{stage.name} (v{stage.version}, {stage.kind}): {stage.description}")
        for opt in stage.options_table():
            click.echo(f"    {opt['name']}: {opt['type']} = {opt['default']!r}  {opt['help']}".rstrip())
        if stage.cli_options:
            click.echo(f"    flags: {' '.join(p.opts[0] for p in stage.cli_options)}")


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """List installed plugins and what they register."""
    from ftdata import plugins

    info = plugins.installed()
    registered = {"stages": list(plugins.stages()), "generators": list(plugins.generators()),
                  "trainers": list(plugins.trainers())}
    if as_json:
        emit_json({"plugins": info, **registered})
        return
    for entry in info:
        click.echo(f"{entry['name']}  [{entry['distribution']}]  hooks: {', '.join(entry['hooks'])}")
    for kind, names in registered.items():
        click.echo(f"{kind}: {', '.join(names) or '(none)'}")
