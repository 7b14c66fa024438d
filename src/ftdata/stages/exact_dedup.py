"""exact_dedup: drop rows whose normalised text equals an earlier-kept row's (`exact_duplicate`).

The key is computed from RECORD, the canonical (sorted-key) JSON of the example, so key order never hides
a copy. Normalisation: lower case, every run of whitespace — including the JSON escapes `\\n`, `\\r`,
`\\t`, `\\f` — collapsed to one space, and whitespace next to a string's quotes dropped. Scope
`conversation` compares whole examples (every message, tools, weights); scope `user` compares only the
user turns (the same question asked twice with different answers is one question). Rows with no user
turn text — or whose user turns are lists of content parts rather than strings — are never duplicates
under scope `user` (counted as `not_compared`).

Rows are grouped by a 64-bit hash of the key (polars, in Rust, a slice of rows at a time so the normalised
text never exists for all rows at once); every drop is confirmed by comparing the two normalised texts themselves, so
a hash collision cannot remove a row. Of each group one row is kept (`keep`): the first, the longest, or
a human-written one before synthetic ones (then the first). Dropped rows name the kept row
(DUPLICATE_OF, SIMILARITY 1.0); the kept row and its copies share CLUSTER (the kept row's existing
cluster, else its id), which the split stage keeps together.
"""

from __future__ import annotations

from typing import Any, Literal

import click
import polars as pl
from pydantic import Field

from ftdata import frame as F
from ftdata.stage import Context, Stage, StageConfig, StageResult

KeepPolicy = Literal["first", "longest", "human"]

# A user message in canonical JSON: keys sorted, so "content" comes first, then "name", then "role".
_STRING = r'"(?:[^"\\]|\\.)*"'
USER_MESSAGE = rf'\{{"content":{_STRING}(?:,"name":{_STRING})?,"role":"user"'
# Whitespace other than " " as it appears inside canonical JSON text: escaped ASCII controls, raw Unicode
# spaces. Literal patterns (Aho-Corasick) are ~5x faster here than a Unicode `\s` regex.
_OTHER_WHITESPACE = ["\\n", "\\r", "\\t", "\\f", "\\u000b", "\u0085", "\u00a0", "\u1680",
                     *(chr(c) for c in range(0x2000, 0x200B)), "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
_ESCAPED_BACKSLASH = "\x00"  # cannot occur raw in JSON text, so it can stand for an escaped backslash
_HASH_SEED = 0x5EED
KEY_SLICE_ROWS = 50_000
KEY_SLICES_AT_ONCE = 2


class ExactDedupConfig(StageConfig):
    scope: Literal["conversation", "user"] = Field(
        default="conversation", description="Compare whole conversations, or user turns only"
    )
    keep: KeepPolicy = Field(
        default="first", description="Which row of a group stays: first, longest, or human over synthetic"
    )


def normalised(scope: str) -> pl.Expr:
    """The comparison key of RECORD under `scope` (null when scope=user and there is no user text)."""
    text = pl.col(F.RECORD)
    if scope == "user":
        text = text.str.extract_all(USER_MESSAGE).list.join("\n")
        text = pl.when(text.str.len_bytes() > 0).then(text)
    return (
        text.str.to_lowercase()
        .str.replace_all("\\\\", _ESCAPED_BACKSLASH, literal=True)
        .str.replace_many(_OTHER_WHITESPACE, [" "] * len(_OTHER_WHITESPACE))
        .str.replace_all(" {2,}", " ")
        .str.replace_all(' " ?|" ', '"')
    )


def keep_order(keep: KeepPolicy) -> tuple[list[pl.Expr], list[bool]]:
    """Sort keys (and descending flags) that put the row to keep first within a group."""
    row = pl.col("__row")
    if keep == "longest":
        return [pl.col(F.RECORD).str.len_bytes(), row], [True, False]
    if keep == "human":
        return [pl.col(F.ORIGIN).fill_null("human") != "human", row], [False, False]
    return [row], [False]


def representatives(frame: pl.DataFrame, config: ExactDedupConfig) -> pl.DataFrame:
    """Per row: its key hash (null = not compared) and the row index of its group's kept row."""
    text = normalised(config.scope)
    key = pl.when(text.is_not_null()).then(text.hash(_HASH_SEED)).alias("__key")
    # A few slices at a time: over the whole frame the normalised text existed for every row (+1x the
    # records' size at peak, even with the streaming engine). Lazy, so the text is computed once for the
    # null test and the hash (eager evaluation did it twice), and slices of a batch run on parallel threads.
    starts = range(0, frame.height, KEY_SLICE_ROWS)
    parts: list[pl.Series] = [pl.Series("__key", [], dtype=pl.UInt64())]
    for batch in range(0, len(starts), KEY_SLICES_AT_ONCE):
        lazy = [frame.slice(start, KEY_SLICE_ROWS).lazy().select(key) for start in starts[batch : batch + KEY_SLICES_AT_ONCE]]
        parts += [keys.get_column("__key") for keys in pl.collect_all(lazy)]
    keys = pl.concat(parts)
    by, descending = keep_order(config.keep)
    table = frame.select(F.RECORD, F.ORIGIN).with_columns(keys, pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"))
    return table.select(
        "__key",
        "__row",
        pl.when(pl.col("__key").is_null())
        .then(pl.col("__row"))
        .otherwise(pl.col("__row").sort_by(by, descending=descending).first().over("__key"))
        .alias("__keep"),
    )


def run(frame: pl.DataFrame, config: ExactDedupConfig, ctx: Context) -> StageResult:
    reps = representatives(frame, config)
    candidate = reps.filter(pl.col("__keep") != pl.col("__row"))
    # Confirm on the normalised text itself (a 64-bit hash collision must not drop a row).
    rows = candidate.get_column("__row")
    keeps = candidate.get_column("__keep")
    text_of = normalised(config.scope)
    same = (
        frame[rows.to_numpy()].select(text_of).to_series()
        == frame[keeps.to_numpy()].select(text_of).to_series()
    ).fill_null(False)
    dup_rows, dup_keeps = rows.filter(same).to_numpy(), keeps.filter(same).to_numpy()

    ids, clusters = frame.get_column(F.ID), frame.get_column(F.CLUSTER)
    keep_cluster = clusters.gather(dup_keeps).fill_null(ids.gather(dup_keeps))
    is_dup = pl.Series("__dup", [False] * frame.height, dtype=pl.Boolean()).scatter(dup_rows, True)
    # Kept rows that have copies get the group's cluster id.
    cluster = clusters.clone().scatter(dup_keeps, keep_cluster).scatter(dup_rows, keep_cluster)
    marked = frame.with_columns(cluster.alias(F.CLUSTER))
    kept = marked.filter(~is_dup)
    what = "user turns" if config.scope == "user" else "normalised conversation"
    partner = ids.gather(dup_keeps)
    rejected = F.reject(
        marked[dup_rows],
        STAGE.name,
        "exact_duplicate",
        detail=[f"same {what} as {p[:12]}" for p in partner.to_list()],
        duplicate_of=partner,
        similarity=[1.0] * len(dup_rows),
    )
    stats = {
        "scope": config.scope,
        "keep": config.keep,
        "groups": int(pl.Series(dup_keeps, dtype=pl.Int64()).n_unique()) if len(dup_keeps) else 0,
        "duplicates": len(dup_rows),
        "not_compared": int(reps.get_column("__key").null_count()),
    }
    return StageResult(kept=kept, rejected=rejected, stats=stats)


def _config_from_cli(params: dict[str, Any]) -> ExactDedupConfig | None:
    if not params.get("dedup"):
        return None
    return ExactDedupConfig(scope=params.get("dedup_scope") or "conversation", keep=params.get("dedup_keep") or "first")


STAGE = Stage(
    name="exact_dedup",
    version="1",
    kind="global",
    config_cls=ExactDedupConfig,
    run=run,
    order=30,
    description="Drop copies whose normalised text (case, whitespace, key order ignored) repeats (exact_duplicate)",
    cli_options=[
        click.Option(["--dedup"], is_flag=True, default=False, help="Drop exact and near duplicates (both dedup stages)."),
        click.Option(
            ["--dedup-scope"],
            type=click.Choice(["conversation", "user"]),
            default=None,
            help="Exact dedup compares whole conversations (default) or user turns only.",
        ),
        click.Option(
            ["--dedup-keep"],
            type=click.Choice(["first", "longest", "human"]),
            default=None,
            help="Which row of a duplicate group stays (default first; human = human-written over synthetic).",
        ),
    ],
    config_from_cli=_config_from_cli,
)
