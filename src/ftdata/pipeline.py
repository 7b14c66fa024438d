"""Run a recipe: ingest → stages → store, with every row accounted for.

The pipeline, not the stages, counts, times and shows progress, and enforces for every stage
`rows_in + generated == len(kept) + len(rejected)`: a stage that loses or invents rows is a bug, and the
run stops rather than write a version that does not add up.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

import ftdata
from ftdata import frame as F
from ftdata.ingest import IngestOptions, ingest
from ftdata.recipe import Step, build_steps
from ftdata.rowstage import RowStep
from ftdata.stage import Context, Progress, StageConfig, StageResult
from ftdata.store import Store, Version, dump_json
from ftdata.writer import label_distribution, load_version_frame, write_version

DEFAULT_MODEL = "gpt-4.1-mini-2025-04-14"
# Inputs from which a run starts its worker pool up front: below, stages run in-process or (tokens over
# 32 MB of records) start their own.
SHARED_POOL_MIN_BYTES = 32 << 20


class AccountingError(RuntimeError):
    """A stage returned a different number of rows than it was given (plus what it generated)."""


@dataclass
class StageReport:
    name: str
    version: str
    config: dict[str, Any]
    rows_in: int
    rows_out: int
    generated: int
    rejected_by_reason: dict[str, int]
    stats: dict[str, Any]
    seconds: float
    fused: bool = False  # ran inside ingest (a row stage): its time is ingest's

    def manifest_entry(self) -> dict[str, Any]:
        # Wall times stay out of the manifest: the same inputs must give a byte-identical manifest
        # (created_at aside). They are in the run summary instead.
        return {
            "name": self.name,
            "version": self.version,
            "config": self.config,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "generated": self.generated,
            "rejected": sum(self.rejected_by_reason.values()),
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "stats": self.stats,
        }


@dataclass
class CurateResult:
    version: Version
    manifest: dict[str, Any]
    created: bool
    reports: list[StageReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "ref": self.version.ref,
            "path": str(self.version.path),
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "stages": [
                {**{k: v for k, v in r.manifest_entry().items() if k not in ("config", "stats")},
                 "seconds": round(r.seconds, 3), **({"in_ingest": True} if r.fused else {})}
                for r in self.reports
            ],
            "splits": {name: {k: s.get(k) for k in ("rows", "tokens", "synthetic")} for name, s in m["splits"].items()},
            "totals": m["totals"],
            "rejected_by_reason": m["totals"]["rejected_by_reason"],
            "cost": m.get("cost"),
            "labels": m.get("labels"),
        }


def reasons(rejected: pl.DataFrame) -> dict[str, int]:
    if rejected.is_empty():
        return {}
    counts = rejected.group_by(F.REASON).len()
    return {str(r): int(n) for r, n in counts.iter_rows()}


def version_id(
    inputs: Sequence[dict[str, Any]], ingest_options: IngestOptions, steps: Sequence[Step], seed: int,
    target_model: str, parent: str | None,
) -> str:
    """Content address of a run: same inputs + options + recipe + seed + tool version → same id."""
    key = {
        "inputs": [{"path": i["path"], "sha256": i["sha256"]} for i in inputs],
        "ingest": ingest_options.model_dump(mode="json"),
        "stages": [s.describe() for s in steps],
        "seed": seed,
        "target_model": target_model,
        "parent": parent,
        "ftdata": ftdata.__version__,
    }
    return hashlib.sha256(dump_json(key)).hexdigest()[:12]


def run_stages(
    frame: pl.DataFrame, steps: Sequence[Step], ctx: Context
) -> tuple[pl.DataFrame, list[pl.DataFrame], list[StageReport], dict[str, Any]]:
    """Run the steps in order. Each stage's input is freed once the stage returns, unless the caller
    still holds it."""
    rejected_frames: list[pl.DataFrame] = []
    reports: list[StageReport] = []
    sections: dict[str, Any] = {}
    for step in steps:
        stage, config = step.stage, step.config
        rows_in = frame.height
        ctx.progress.start(stage.name, rows_in)
        started = time.perf_counter()
        result: StageResult = stage.run(frame, config, ctx)
        seconds = time.perf_counter() - started
        if rows_in + result.generated != result.kept.height + result.rejected.height:
            raise AccountingError(
                f"stage {stage.name!r} got {rows_in} rows (+{result.generated} generated) but returned "
                f"{result.kept.height} kept + {result.rejected.height} rejected"
            )
        rejected = result.rejected
        if not rejected.is_empty():
            rejected = rejected.with_columns(pl.lit(stage.name).alias(F.STAGE)).select(list(F.REJECT_SCHEMA))
            rejected_frames.append(rejected)
        reports.append(
            StageReport(stage.name, stage.version, config.model_dump(mode="json"), rows_in, result.kept.height,
                        result.generated, reasons(rejected), result.stats, seconds)
        )
        for key, value in result.sections.items():
            if isinstance(value, dict) and isinstance(sections.get(key), dict):
                sections[key] = {**sections[key], **value}
            else:
                sections[key] = value
        frame = result.kept
        ctx.progress.advance(rows_in)
        ctx.extras["kept_so_far"] = frame
    ctx.extras.pop("kept_so_far", None)
    return frame, rejected_frames, reports, sections


def row_stage_reports(
    fused: Sequence[Step], rejected: pl.DataFrame, stats: Sequence[dict[str, Any]], rows_in: int
) -> tuple[list[StageReport], list[pl.DataFrame]]:
    """Reports (and rejected rows, in stage order) of the row stages that ran inside ingest. Their time
    is part of ingest's, so their own seconds are 0."""
    reports: list[StageReport] = []
    frames: list[pl.DataFrame] = []
    for step, step_stats in zip(fused, stats, strict=True):
        mine = rejected.filter(pl.col(F.STAGE) == step.stage.name).select(list(F.REJECT_SCHEMA))
        reports.append(
            StageReport(step.stage.name, step.stage.version, step.config.model_dump(mode="json"), rows_in,
                        rows_in - mine.height, 0, reasons(mine), step_stats, 0.0, fused=True)
        )
        if not mine.is_empty():
            frames.append(mine)
        rows_in -= mine.height
    return reports, frames


def shared_pool(
    inputs: Sequence[str | Path], steps: Sequence[Step], target_model: str, workers: int
) -> ProcessPoolExecutor | None:
    """Worker processes for the whole run, started and warmed now (`ftdata.workers`), when the inputs are
    big enough for stages to fan out; None otherwise (a stage that still wants workers makes its own)."""
    from ftdata.tokenizer import resolve_tokenizer
    from ftdata.workers import spawn_pool, warm_pool

    size = sum(Path(p).stat().st_size for p in inputs if Path(p).is_file())
    if workers <= 1 or size < SHARED_POOL_MIN_BYTES:
        return None
    specs: list[str] = []
    for step in steps:
        if step.stage.name in ("tokens", "length"):
            model = getattr(step.config, "model", None) or target_model
            try:
                specs.append(resolve_tokenizer(model, getattr(step.config, "tokenizer", None)))
            except ValueError:  # the stage reports it with its own message
                continue
    pool = spawn_pool(workers)
    warm_pool(pool, workers, tuple(dict.fromkeys(specs)))
    return pool


def make_context(store: Store, dataset: str, seed: int, target_model: str, workers: int,
                 progress: Progress | None, cache_dir: Path | None) -> Context:
    from ftdata.models import cache_root

    return Context(seed=seed, store=store.root, cache_dir=cache_dir or cache_root(), dataset=dataset,
                   target_model=target_model, workers=workers, progress=progress or Progress())


def curate(
    inputs: Sequence[str | Path],
    steps: Sequence[tuple[str, dict[str, Any] | StageConfig]] | Sequence[Step] = (),
    dataset: str = "dataset",
    store: Store | str | Path | None = None,
    seed: int = 0,
    target_model: str = DEFAULT_MODEL,
    ingest_options: IngestOptions | None = None,
    workers: int = 2,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> CurateResult:
    """Ingest `inputs`, run the recipe, write (or find) the content-addressed version."""
    started = time.perf_counter()
    from ftdata.pricing import model_info

    model_info(target_model)  # an unknown model fails here, naming the known ones, not deep inside a stage
    store = store if isinstance(store, Store) else Store(store)
    ingest_options = ingest_options or IngestOptions()
    built = list(steps) if steps and isinstance(steps[0], Step) else build_steps(steps)  # type: ignore[arg-type]
    ctx = make_context(store, dataset, seed, target_model, workers, progress, cache_dir)

    # Row stages at the head of the recipe (normalize, validate) run inside ingest, on each record as it is
    # parsed, in the reader's workers (`ftdata.rowstage`).
    fused: list[Step] = []
    for step in built:
        if step.stage.row_op is None:
            break
        fused.append(step)
    row_steps = [RowStep(step.stage.name, step.stage.row_op, step.config) for step in fused]
    ctx.progress.start("+".join(["ingest", *(step.stage.name for step in fused)]))
    ingest_started = time.perf_counter()
    # Millions of small objects are created and none are cyclic: the cyclic GC only costs time here.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        ctx.pool = shared_pool(inputs, built, target_model, workers)
        ingested = ingest([str(p) for p in inputs], ingest_options, workers=workers, row_steps=row_steps, pool=ctx.pool)
        vid = version_id(ingested.inputs, ingest_options, built, seed, target_model, None)
        ingest_seconds = time.perf_counter() - ingest_started
        records_read = ingested.frame.height + ingested.stage_rejected.height
        ingest_report = StageReport(
            "ingest", "1", ingest_options.model_dump(mode="json"), sum(i["rows"] for i in ingested.inputs),
            records_read, 0, reasons(ingested.rejected), {}, ingest_seconds,
        )
        if ingest_report.rows_in != records_read + ingested.rejected.height:
            raise AccountingError(
                f"ingest read {ingest_report.rows_in} rows but produced {records_read} + "
                f"{ingested.rejected.height} rejected"
            )
        if store.exists(dataset, vid):
            version = Version(store.root, dataset, vid)
            return CurateResult(version, version.manifest, False, [ingest_report], time.perf_counter() - started)
        fused_reports, fused_rejected = row_stage_reports(fused, ingested.stage_rejected, ingested.stage_stats, records_read)
        # Hand the frame over and drop every other reference: at 1M rows the ingested frame is GBs, and
        # keeping it alive through the stages doubled peak memory.
        handed_over = [ingested.frame]
        ingest_rejected, inputs_meta = ingested.rejected, ingested.inputs
        labels_ingested = label_distribution(pl.concat([ingested.frame.select(F.LABEL), ingested.stage_rejected.select(F.LABEL)]))
        del ingested
        final, rejected_frames, reports, sections = run_stages(handed_over.pop(), built[len(fused):], ctx)
        reports[:0] = [ingest_report, *fused_reports]
        rejected_all = pl.concat([ingest_rejected, *fused_rejected, *rejected_frames], how="vertical")
        ctx.progress.start("write", final.height)
        version, manifest = write_version(
            store, dataset, vid, final, rejected_all, reports, sections,
            header={"inputs": inputs_meta, "seed": seed, "target_model": target_model, "parent": None},
            labels_ingested=labels_ingested,
        )
    finally:
        if ctx.pool is not None:
            ctx.pool.shutdown(wait=True, cancel_futures=True)
        if gc_was_enabled:
            gc.enable()
    return CurateResult(version, manifest, True, reports, time.perf_counter() - started)


def curate_from_version(
    parent: Version,
    steps: Sequence[tuple[str, dict[str, Any] | StageConfig]],
    store: Store,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int = 2,
) -> CurateResult:
    """A new version derived from an existing one (e.g. after review): its rows, its splits, more stages."""
    started = time.perf_counter()
    built = build_steps(steps, complete=False)
    manifest = parent.manifest
    target_model = manifest.get("target_model", DEFAULT_MODEL)
    ctx = make_context(store, parent.dataset, seed, target_model, workers, progress, None)
    frame = load_version_frame(parent)
    inputs = [{"path": parent.ref, "sha256": hashlib.sha256((parent.path / "manifest.json").read_bytes()).hexdigest(),
               "bytes": (parent.path / "manifest.json").stat().st_size, "rows": frame.height}]
    vid = version_id(inputs, IngestOptions(), built, seed, target_model, parent.ref)
    if store.exists(parent.dataset, vid):
        version = Version(store.root, parent.dataset, vid)
        return CurateResult(version, version.manifest, False, [], time.perf_counter() - started)
    final, rejected_frames, reports, sections = run_stages(frame, built, ctx)
    rejected_all = pl.concat(rejected_frames, how="vertical") if rejected_frames else F.empty_rejects()
    version, new_manifest = write_version(
        store, parent.dataset, vid, final, rejected_all, reports, sections,
        header={"inputs": inputs, "seed": seed, "target_model": target_model, "parent": parent.version},
        labels_ingested=label_distribution(frame),
        carry={k: manifest[k] for k in ("tokens",) if k in manifest},
    )
    return CurateResult(version, new_manifest, True, reports, time.perf_counter() - started)
