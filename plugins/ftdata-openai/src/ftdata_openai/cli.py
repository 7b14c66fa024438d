"""`ftdata train openai <dataset>@<version>`: preflight, confirm, upload, create the job, optionally wait.

`ftdata train` adds this command (with its `--store` option, which puts the store in the context
object); run alone (e.g. from click's CliRunner) it falls back to FTDATA_STORE or ./datasets. Results go
to stdout (`--json`: one document), tables and progress to stderr.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from ftdata.store import Store, StoreError, dump_json

from ftdata_openai.api_limits import METHODS, SEED_MAX

# Everything else (pydantic, the tokenizer, polars, openai) is imported inside the command: the plugin
# host imports this module for every `ftdata` invocation, `--help` included.


def _store() -> Store:
    ctx = click.get_current_context()
    obj = ctx.find_object(dict)
    found = obj.get("store") if obj else None
    return found if isinstance(found, Store) else Store()


def _emit(as_json: bool, document: dict[str, Any], line: str) -> None:
    click.echo(dump_json(document).decode() if as_json else line, nl=not as_json)


def _suffix(value: str | None) -> str | None:
    from ftdata_openai.options import check_suffix

    if value is None:
        return None
    try:
        return check_suffix(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--suffix'") from None


@click.command("openai")
@click.argument("ref")
@click.option("--model", required=True, help="Base model to fine-tune, e.g. gpt-4.1-mini-2025-04-14.")
@click.option(
    "--method", type=click.Choice(METHODS), default=None,
    help="supervised (chat rows) or dpo (preference rows). Default: from the training rows.",
)
@click.option(
    "-o", "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
    help="Hyperparameter: n_epochs, batch_size, learning_rate_multiplier, beta (dpo); each also takes 'auto'.",
)
@click.option("--suffix", help="Model name suffix (≤ 64 chars). Default: <dataset>-<version[:8]>.")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), help="Job seed (default: the API picks one).")
@click.option("--wait", is_flag=True, help="Follow the job until it ends (later: `ftdata runs watch <run>`).")
@click.option("--dry-run", is_flag=True, help="Run the offline preflight only; upload nothing.")
@click.option("-y", "--yes", is_flag=True, help="Start the (paid) job without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("-s", "--silent", is_flag=True, help="No tables or progress on stderr.")
@click.option("--base-url", help="An OpenAI-compatible API (env OPENAI_BASE_URL; default api.openai.com).")
@click.option(
    "--azure", is_flag=True, help="Use Azure OpenAI (key from AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN)."
)
@click.option("--azure-endpoint", help="Azure resource endpoint (env AZURE_OPENAI_ENDPOINT).")
@click.option("--api-version", help="Azure API version (env OPENAI_API_VERSION).")
def train_command(
    ref: str,
    model: str,
    method: str | None,
    option_pairs: tuple[str, ...],
    suffix: str | None,
    seed: int | None,
    wait: bool,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    silent: bool,
    base_url: str | None,
    azure: bool,
    azure_endpoint: str | None,
    api_version: str | None,
) -> None:
    """Fine-tune a model on a dataset version through the OpenAI fine-tuning API.

    Works with OpenAI, Azure OpenAI (--azure) and compatible providers (--base-url). The key comes from
    the environment only and is never written anywhere.
    """
    from pydantic import ValidationError

    from ftdata_openai.connection import connection_from_context, require_key, resolve_endpoint
    from ftdata_openai.display import cost_text, messages, preflight_line, render_preflight, run_line, stderr_console
    from ftdata_openai.errors import PreflightFailed, TrainerError
    from ftdata_openai.options import Options, parse_hyperparameters
    from ftdata_openai.preflight import detect_method, run_preflight
    from ftdata_openai.run import start_run, watch_run

    store = _store()
    try:
        version = store.resolve(ref)
        method = method or detect_method(version)
    except StoreError as exc:
        raise TrainerError(str(exc)) from None
    hyperparameters = parse_hyperparameters(method, option_pairs)
    try:
        options = Options(
            model=model, method=method, hyperparameters=hyperparameters, suffix=_suffix(suffix), seed=seed
        )
    except ValidationError as exc:
        raise click.UsageError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    endpoint = resolve_endpoint(base_url, azure, azure_endpoint, api_version)
    connection = connection_from_context()
    console = stderr_console()

    preflight = run_preflight(version, options, endpoint)
    if not silent:
        render_preflight(preflight, console)
    if dry_run or not preflight.ok:
        _emit(as_json, {"preflight": preflight.to_dict(), "run": None}, preflight_line(preflight))
        if not preflight.ok:
            failed = ", ".join(check.name for check in preflight.failures)
            raise PreflightFailed(f"preflight failed ({failed}); nothing was uploaded")
        return

    require_key(endpoint, connection.env)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "starting a paid fine-tuning job needs confirmation: pass --yes (stdin is not a terminal)"
            )
        click.confirm(
            f"Start a fine-tuning job of {model} on {endpoint.base_url}: {cost_text(preflight.cost)}?",
            abort=True, err=True,
        )
    with messages(console, silent) as (show, _):
        record = start_run(store, version, options, endpoint, preflight, connection, show=show)
        if not wait:
            show(f"follow it with: ftdata runs watch {record['run_id']}")
    if wait:
        with messages(console, silent, live=True) as (show, progress):
            try:
                record = watch_run(store, record, connection, show=show, progress=progress)
            except TrainerError:
                _emit(as_json, {"preflight": preflight.to_dict(), "run": record}, run_line(record))
                raise
    _emit(as_json, {"preflight": preflight.to_dict(), "run": record}, run_line(record))
