from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from factories import chat, write_jsonl

from ftdata.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, store: Path | None = None) -> Any:
    argv = list(args) + (["--store", str(store)] if store is not None else [])
    return CliRunner().invoke(cli, argv, obj={}, catch_exceptions=False)


@pytest.fixture
def data_file(tmp_path: Path, support_rows: list[dict[str, Any]]) -> Path:
    return write_jsonl(tmp_path / "support.jsonl", [*support_rows, "{broken"])


def test_curate_prints_the_version_and_json_summary(data_file: Path, store_dir: Path) -> None:
    result = run("curate", str(data_file), "--name", "support", "--json", store=store_dir)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ref"].startswith("support@")
    assert summary["totals"]["kept"] == 20 and summary["totals"]["rejected"] == 1
    assert summary["rejected_by_reason"] == {"ingest.invalid_json": 1}
    assert Path(summary["path"]).is_dir()


def test_curate_human_output_names_the_version_and_rejects(data_file: Path, store_dir: Path) -> None:
    result = run("curate", str(data_file), "--name", "support", store=store_dir)
    assert result.exit_code == 0
    ref = result.stdout.strip()
    assert re.fullmatch(r"support@[0-9a-f]{12}", ref)
    assert "rejected.jsonl" in result.stderr and "ingest.invalid_json" in result.stderr


def test_versions_show_and_latest(data_file: Path, store_dir: Path, tmp_path: Path) -> None:
    first = json.loads(run("curate", str(data_file), "--name", "support", "--json", store=store_dir).stdout)
    second = json.loads(run("curate", str(data_file), "--name", "support", "--seed", "3", "--json", store=store_dir).stdout)
    listed = json.loads(run("versions", "support", "--json", store=store_dir).stdout)
    assert [v["ref"] for v in listed] == [first["ref"], second["ref"]]
    shown = json.loads(run("show", "support@latest", "--json", store=store_dir).stdout)
    assert shown["ref"] == second["ref"]
    assert shown["manifest"]["seed"] == 3
    prefix = first["ref"].split("@")[1][:6]
    assert json.loads(run("show", f"support@{prefix}", "--json", store=store_dir).stdout)["ref"] == first["ref"]
    human = run("show", "support@latest", store=store_dir)
    assert human.exit_code == 0 and second["ref"] in human.stdout and "train" in human.stdout


def test_verify_catches_a_changed_byte(data_file: Path, store_dir: Path) -> None:
    summary = json.loads(run("curate", str(data_file), "--name", "support", "--json", store=store_dir).stdout)
    assert run("verify", store=store_dir).exit_code == 0
    train = Path(summary["path"]) / "train.jsonl"
    raw = bytearray(train.read_bytes())
    raw[10] = ord("X") if raw[10] != ord("X") else ord("Y")
    train.write_bytes(bytes(raw))
    result = run("verify", summary["ref"], store=store_dir)
    assert result.exit_code == 3
    assert "MISMATCH" in result.stdout and "train.jsonl" in result.stdout


def test_diff_reports_added_and_removed_rows(tmp_path: Path, store_dir: Path, support_rows: list[dict[str, Any]]) -> None:
    a_file = write_jsonl(tmp_path / "a.jsonl", support_rows[:15])
    b_file = write_jsonl(tmp_path / "b.jsonl", support_rows[5:] + [chat("A brand new question?", "A brand new answer.")])
    a = json.loads(run("curate", str(a_file), "--name", "support", "--json", store=store_dir).stdout)["ref"]
    b = json.loads(run("curate", str(b_file), "--name", "support", "--json", store=store_dir).stdout)["ref"]
    result = json.loads(run("diff", a, b, "--json", store=store_dir).stdout)
    assert result["rows_added"] == 6 and result["rows_removed"] == 5
    assert result["inputs_changed"] is True


def test_exit_codes(tmp_path: Path, store_dir: Path) -> None:
    missing = run("curate", str(tmp_path / "nope.jsonl"), store=store_dir)
    assert missing.exit_code == 1 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.output
    assert run("curate", "--no-such-flag", store=store_dir).exit_code == 2
    assert run("show", "ghost@latest", store=store_dir).exit_code == 1
    assert run("curate", str(tmp_path / "x.jsonl"), "-o", "nonsense", store=store_dir).exit_code in (1, 2)


def test_bad_override_is_a_usage_error(data_file: Path, store_dir: Path) -> None:
    result = run("curate", str(data_file), "-o", "split.train=banana", store=store_dir)
    assert result.exit_code == 2
    assert "split" in result.stderr and "train" in result.stderr


def test_recipe_file_builds_the_same_version_as_flags(data_file: Path, store_dir: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    # The stages the flags turn on by default (tokens, length), then the split with its ratios.
    recipe.write_text('seed = 5\n[[stage]]\nname = "tokens"\n[[stage]]\nname = "length"\n'
                      '[[stage]]\nname = "split"\ntrain = 0.8\nvalidation = 0.2\n')
    by_recipe = json.loads(run("curate", str(data_file), "--name", "s", "--recipe", str(recipe), "--json", store=store_dir).stdout)
    by_flags = json.loads(run("curate", str(data_file), "--name", "s", "--seed", "5", "-o", "split.train=0.8",
                              "-o", "split.validation=0.2", "--json", store=store_dir).stdout)
    assert by_recipe["ref"] == by_flags["ref"]
    assert by_flags["created"] is False


def test_unknown_stage_in_recipe_is_a_usage_error(data_file: Path, store_dir: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[stage]]\nname = "dedupe_everything"\n')
    result = run("curate", str(data_file), "--recipe", str(recipe), store=store_dir)
    assert result.exit_code == 2 and "dedupe_everything" in result.stderr


def test_stages_and_plugins_list_the_builtins() -> None:
    stages = json.loads(run("stages", "--json").stdout)
    names = {s["name"] for s in stages}
    assert {"normalize", "validate", "exact_dedup", "near_dedup", "tokens", "length", "balance", "split"} <= names
    plugins = json.loads(run("plugins", "--json").stdout)
    assert "ftdata.stages" in {p["name"] for p in plugins["plugins"]}


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    ctx = cli.make_context("ftdata", ["--help"], resilient_parsing=True)
    for name in cli.list_commands(ctx):
        assert f"ftdata {name}" in readme, f"`ftdata {name}` is not in the README"


def test_store_precedence_flag_then_env(data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTDATA_STORE", str(tmp_path / "from-env"))
    by_env = json.loads(run("curate", str(data_file), "--name", "s", "--json").stdout)
    assert Path(by_env["path"]).is_relative_to(tmp_path / "from-env")
    by_flag = json.loads(run("curate", str(data_file), "--name", "s", "--json", store=tmp_path / "from-flag").stdout)
    assert Path(by_flag["path"]).is_relative_to(tmp_path / "from-flag")


def test_a_callers_store_beats_the_environment(data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin commands get --store added; $FTDATA_STORE must not override a store the caller chose."""
    from ftdata.store import Store

    monkeypatch.setenv("FTDATA_STORE", str(tmp_path / "elsewhere"))
    run("curate", str(data_file), "--name", "s", "--json", store=tmp_path / "chosen")
    result = CliRunner().invoke(cli, ["versions", "s", "--json"], obj={"store": Store(tmp_path / "chosen")})
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 1
