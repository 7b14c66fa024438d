"""`ftdata check FILE...`: the curate rules (ingest → normalize → validate) without writing a version.

Made for pre-commit (`.pre-commit-hooks.yaml` declares it): one line per problem on stdout,

    data/chat.jsonl:12: invalid_weight: messages[3].weight: 2 is not the integer 0 or 1

sorted by path and line, a one-line summary on stderr, or one JSON document with `--json`.
Exit codes: 0 no problems, 3 problems found, 1 a file cannot be read at all, 2 usage.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import orjson

from ftdata.ingest import IngestError, IngestOptions, ingest, ingest_cli_options, ingest_options_from_cli

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PROBLEMS = 3


@dataclass(frozen=True)
class Finding:
    path: str
    line: int | None
    reason: str
    detail: str

    def render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.reason}: {self.detail}"


@dataclass
class CheckReport:
    files: list[str]
    rows: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def rows_with_problems(self) -> int:
        return len({(f.path, f.line) for f in self.findings})

    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(f.reason for f in self.findings).items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "rows": self.rows,
            "rows_with_problems": self.rows_with_problems,
            "problems_by_reason": self.by_reason(),
            "problems": [asdict(f) for f in self.findings],
        }

    def summary(self) -> str:
        head = f"ftdata check: {_count(len(self.files), 'file')}, {_count(self.rows, 'row')}"
        if self.ok:
            return f"{head}, no problems"
        counts = ", ".join(f"{reason} {n:,}" for reason, n in self.by_reason().items())
        return (
            f"{head}, {_count(len(self.findings), 'problem')} in {_count(self.rows_with_problems, 'row')} ({counts})"
        )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def check_files(paths: list[str], options: IngestOptions | None = None) -> CheckReport:
    """Apply the curate rules to `paths`; raises IngestError when a file cannot be read at all."""
    from ftdata import frame as F
    from ftdata.rowstage import RowStep
    from ftdata.stages import normalize, validate

    # The same row stages curate starts with, run as each record is read (ftdata.rowstage).
    row_steps = [
        RowStep("normalize", normalize.NormalizeOp, normalize.NormalizeConfig()),
        RowStep("validate", validate.ValidateOp, validate.ValidateConfig()),
    ]
    result = ingest(paths, options or IngestOptions(), row_steps=row_steps)
    findings = [
        Finding(source, line, reason, detail or "")
        for source, line, reason, detail in result.rejected.select(F.SOURCE, F.LINE, F.REASON, F.DETAIL).iter_rows()
    ]
    # The stage keeps a row's first reason; a pre-commit user wants every problem, one per line.
    rejected = result.stage_rejected.select(F.SOURCE, F.LINE, F.RECORD, F.KIND)
    for source, line, record, kind in rejected.iter_rows():
        findings.extend(Finding(source, line, p.reason, p.detail) for p in validate.record_problems(record, kind))
    findings.sort(key=lambda f: (f.path, f.line or 0))  # stable: a row's problems stay in rule order
    rows = sum(entry["rows"] for entry in result.inputs)
    return CheckReport(files=[str(p) for p in paths], rows=rows, findings=findings)


@click.command(name="check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.pass_context
def check_command(ctx: click.Context, files: tuple[str, ...], as_json: bool, **params: Any) -> None:
    """Check dataset FILES against OpenAI's fine-tuning format rules without writing a version.

    Prints `path:line: reason: detail` per problem. Exit 0 when clean, 3 when problems were found,
    1 when a file cannot be read. Made for pre-commit: see .pre-commit-hooks.yaml.
    """
    try:
        report = check_files(list(files), ingest_options_from_cli(params))
    except IngestError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_ERROR)
    if as_json:
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        if report.findings:
            click.echo("\n".join(f.render() for f in report.findings))
        click.echo(report.summary(), err=True)
    ctx.exit(EXIT_OK if report.ok else EXIT_PROBLEMS)


# CSV files need the same column flags as `ftdata curate`.
check_command.params.extend(ingest_cli_options())


def main(argv: list[str] | None = None) -> int:
    """Entry point for pre-commit style use: `main(["a.jsonl", "b.csv"])` returns the exit code."""
    try:
        rv = check_command.main(args=argv, prog_name="ftdata check", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return EXIT_ERROR
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
