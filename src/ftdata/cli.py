"""The `ftdata` command line: thin over the library (ftdata.pipeline, ftdata.store, plugins).

Exit codes: 0 ok, 1 operational error, 2 usage, 3 data check failed.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

import click

from ftdata import __version__


class UserError(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class UsageProblem(UserError):
    exit_code = 2


def known_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(operational, usage) exception types turned into plain messages."""
    from ftdata.ingest import IngestError
    from ftdata.models import ModelNotAvailable
    from ftdata.plugins import UnknownPluginObject
    from ftdata.pricing import UnknownModel
    from ftdata.recipe import RecipeError
    from ftdata.store import StoreError
    from ftdata.synth.base import SynthError
    from ftdata.tokenizer import TokenizerError

    return (IngestError, StoreError, ModelNotAvailable, TokenizerError, SynthError, OSError), (
        RecipeError, UnknownPluginObject, UnknownModel)


class FtdataGroup(click.Group):
    """Loads plugin commands on first use and turns known errors into plain messages."""

    _plugins_loaded = False

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            type(self)._plugins_loaded = True
            from ftdata.plugins import manager

            manager().hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._load_plugins()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        operational, usage = known_errors()
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except usage as exc:
            raise UsageProblem(str(exc).strip("'\"")) from None
        except operational as exc:
            raise UserError(str(exc)) from None
        except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("FTDATA_DEBUG"):
                raise
            raise UserError(
                f"internal error: {type(exc).__name__}: {exc} (this is a bug in ftdata or a plugin; "
                "set FTDATA_DEBUG=1 for the traceback)\n" + "".join(traceback.format_exception_only(exc)).strip()
            ) from None


def set_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    from ftdata.store import Store

    ctx.ensure_object(dict)
    root = ctx.find_root()
    root.ensure_object(dict)
    # Precedence: --store on this command line, then a store already chosen (a parent's --store, or
    # the caller's obj), then $FTDATA_STORE, then ./datasets.
    given = ctx.get_parameter_source(_param.name or "store") == click.core.ParameterSource.COMMANDLINE
    if given or "store" not in root.obj:
        root.obj["store"] = Store(value)
    ctx.obj = root.obj


def store_option() -> click.Option:
    return click.Option(
        ["--store"], type=click.Path(file_okay=False), default=None, expose_value=False, is_eager=True,
        callback=set_store, envvar="FTDATA_STORE",
        help="Store directory (default ./datasets, or $FTDATA_STORE).",
    )


def with_store(command: click.Command) -> click.Command:
    if not any(p.name == "store" for p in command.params):
        command.params.append(store_option())
    return command


def store_of(ctx: click.Context) -> Any:
    from ftdata.store import Store

    obj = ctx.find_root().obj or {}
    return obj.get("store") or Store()


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(f)


def silent_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-s", "--silent", is_flag=True, help="No progress or tables on stderr.")(f)


@click.group(cls=FtdataGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ftdata")
def cli() -> None:
    """Curate LLM fine-tuning datasets into clean, versioned train/validation/test splits."""


def main() -> None:
    cli(obj={})


def register_builtin_commands() -> None:
    from ftdata import cli_curate, cli_runs, cli_versions

    for command in (cli_curate.curate, cli_curate.stages_command, cli_curate.plugins_command,
                    cli_versions.versions, cli_versions.show, cli_versions.verify, cli_versions.diff,
                    cli_runs.train, cli_runs.runs):
        cli.add_command(with_store(command) if command.name not in ("stages", "plugins") else command)
    cli.add_command(LazyCheck(name="check", help="Check dataset files against the fine-tuning rules (pre-commit hook)."))


class LazyCheck(click.Command):
    """`ftdata check`, resolved from ftdata.check when run (keeps `ftdata --help` light)."""

    def _real(self) -> click.Command:
        from ftdata.check import check_command

        return check_command

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self._real().get_params(ctx)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        return self._real().invoke(ctx)

    def get_help(self, ctx: click.Context) -> str:
        return self._real().get_help(ctx)


register_builtin_commands()
