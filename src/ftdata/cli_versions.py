"""`ftdata versions`, `show`, `verify`, `diff`: reading the store."""

from __future__ import annotations

import sys
from typing import Any

import click

from ftdata.cli import json_option, store_of
from ftdata.output import emit_json, fmt_int, stderr_console, table, top_reasons

DATA_CHECK_FAILED = 3


@click.command()
@click.argument("dataset")
@json_option
@click.pass_context
def versions(ctx: click.Context, dataset: str, as_json: bool) -> None:
    """List the versions of DATASET, oldest first."""
    found = store_of(ctx).versions(dataset)
    rows = []
    for v in found:
        m = v.manifest
        rows.append({"ref": v.ref, "version": v.version, "created_at": m.get("created_at"), "parent": m.get("parent"),
                     "splits": {k: s["rows"] for k, s in m["splits"].items()}, "rejected": m["totals"]["rejected"]})
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        splits = " ".join(f"{k}={n}" for k, n in sorted(r["splits"].items()))
        parent = f" parent={r['parent']}" if r["parent"] else ""
        click.echo(f"{r['ref']}  {r['created_at']}  {splits}  rejected={r['rejected']}{parent}")


@click.command()
@click.argument("ref")
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a version (DATASET@VERSION or DATASET@latest): inputs, stages, splits, tokens, cost, runs."""
    from ftdata.runs import list_runs

    store = store_of(ctx)
    version = store.resolve(ref)
    m = version.manifest
    runs = list_runs(store, version.dataset, version.version)
    if as_json:
        emit_json({"ref": version.ref, "path": str(version.path), "manifest": m,
                   "runs": [{k: r.get(k) for k in ("run_id", "trainer", "status", "model", "created_at")} for r in runs]})
        return
    out = stderr_console(False)
    out.file = sys.stdout
    out.print(f"[bold]{version.ref}[/]  created {m.get('created_at')}  ftdata {m.get('ftdata_version')}"
              + (f"  parent {m['parent']}" if m.get("parent") else ""))
    out.print(f"path: {version.path}")
    out.print(f"seed {m.get('seed')}, target model {m.get('target_model')}")
    out.print(table("Inputs", ["path", "rows", "bytes", "sha256"],
                    [(i["path"], fmt_int(i.get("rows")), fmt_int(i.get("bytes")), i["sha256"][:12]) for i in m["inputs"]],
                    right=("rows", "bytes")))
    out.print(table("Stages", ["stage", "in", "kept", "rejected", "reasons"],
                    [(s["name"], fmt_int(s["rows_in"]), fmt_int(s["rows_out"]), fmt_int(s["rejected"]),
                      top_reasons(s["rejected_by_reason"], 4)) for s in m["stages"]],
                    right=("in", "kept", "rejected")))
    out.print(table("Splits", ["split", "rows", "tokens", "synthetic", "synthetic share"],
                    [(name, fmt_int(s["rows"]), fmt_int(s.get("tokens")), fmt_int(s.get("synthetic")),
                      f"{(s.get('synthetic') or 0) / s['rows']:.0%}" if s["rows"] else "")
                     for name, s in m["splits"].items()],
                    right=("rows", "tokens", "synthetic", "synthetic share")))
    if m.get("cost") and m["cost"].get("usd") is not None:
        c = m["cost"]
        out.print(f"cost estimate: ${c['usd']:.2f} on {c['model']} ({c['epochs']} epochs, prices as of {c['prices_as_of']})")
    if m.get("synthetic"):
        syn = m["synthetic"]
        out.print(f"synthetic: {syn.get('accepted')} accepted of {syn.get('generated')} generated "
                  f"by {syn.get('generator')}:{syn.get('model')} ({syn.get('method')})")
    if runs:
        out.print(table("Runs from this version", ["run", "trainer", "status", "model"],
                        [(r["run_id"], r["trainer"], r.get("status"), r.get("model") or r.get("fine_tuned_model") or "")
                         for r in runs]))


@click.command()
@click.argument("refs", nargs=-1)
@json_option
@click.pass_context
def verify(ctx: click.Context, refs: tuple[str, ...], as_json: bool) -> None:
    """Re-hash every file of the given versions (default: every version in the store).

    Exits 3 when a file does not match its manifest.
    """
    store = store_of(ctx)
    targets = [store.resolve(r) for r in refs] if refs else [v for d in store.datasets() for v in store.versions(d)]
    results = {v.ref: v.verify() for v in targets}
    if as_json:
        emit_json({"ok": not any(results.values()), "versions": results})
    else:
        for ref, problems in results.items():
            click.echo(f"{ref}: {'ok' if not problems else 'MISMATCH'}")
            for problem in problems:
                click.echo(f"  {problem}")
    if any(results.values()):
        ctx.exit(DATA_CHECK_FAILED)


def diff_versions(a: Any, b: Any) -> dict[str, Any]:
    def index(v: Any) -> dict[str, str]:
        return {row["id"]: row.get("split") for row in v.iter_rows_index()}

    ia, ib = index(a), index(b)
    added = sorted(set(ib) - set(ia))
    removed = sorted(set(ia) - set(ib))
    moved = sorted(i for i in set(ia) & set(ib) if ia[i] != ib[i])
    ma, mb = a.manifest, b.manifest
    stages_a = {s["name"]: s for s in ma["stages"]}
    stages_b = {s["name"]: s for s in mb["stages"]}
    stage_rows = []
    for name in list(stages_a) + [n for n in stages_b if n not in stages_a]:
        sa, sb = stages_a.get(name), stages_b.get(name)
        stage_rows.append({
            "stage": name,
            "a": {"rows_out": sa["rows_out"], "rejected": sa["rejected"]} if sa else None,
            "b": {"rows_out": sb["rows_out"], "rejected": sb["rejected"]} if sb else None,
            "config_changed": bool(sa and sb and sa["config"] != sb["config"]),
        })
    return {
        "a": a.ref, "b": b.ref,
        "rows_added": len(added), "rows_removed": len(removed), "rows_changed_split": len(moved),
        "added_ids": added, "removed_ids": removed,
        "splits": {name: {"a": ma["splits"].get(name, {}).get("rows"), "b": mb["splits"].get(name, {}).get("rows")}
                   for name in sorted(set(ma["splits"]) | set(mb["splits"]))},
        "stages": stage_rows,
        "inputs_changed": [i["sha256"] for i in ma["inputs"]] != [i["sha256"] for i in mb["inputs"]],
    }


@click.command()
@click.argument("a")
@click.argument("b")
@json_option
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Compare two versions: rows added/removed (by row id), split sizes, stage counts."""
    store = store_of(ctx)
    result = diff_versions(store.resolve(a), store.resolve(b))
    if as_json:
        emit_json(result)
        return
    click.echo(f"{result['a']} → {result['b']}")
    click.echo(f"rows: +{result['rows_added']} -{result['rows_removed']}, {result['rows_changed_split']} changed split"
               + ("; inputs changed" if result["inputs_changed"] else ""))
    for name, s in result["splits"].items():
        click.echo(f"  {name}: {s['a']} → {s['b']}")
    for s in result["stages"]:
        fa = f"{s['a']['rows_out']} kept/{s['a']['rejected']} rejected" if s["a"] else "absent"
        fb = f"{s['b']['rows_out']} kept/{s['b']['rejected']} rejected" if s["b"] else "absent"
        mark = " (config changed)" if s["config_changed"] else ""
        click.echo(f"  stage {s['stage']}: {fa} → {fb}{mark}")
