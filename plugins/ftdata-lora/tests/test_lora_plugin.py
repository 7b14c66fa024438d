"""The plugin as ftdata sees it: registered through the entry point, commands reachable from the CLI."""

from __future__ import annotations

from click.testing import CliRunner, Result

from ftdata import plugins
from ftdata.store import Store


def ftdata(*args: str) -> Result:
    from ftdata.cli import cli

    return CliRunner().invoke(cli, list(args), obj={})


def test_lora_trainer_is_registered_through_the_entry_point() -> None:
    trainer = plugins.trainers()["lora"]

    assert trainer.command.name == "lora"
    assert "LoRA" in trainer.description
    assert any(p["distribution"].startswith("ftdata-lora ") for p in plugins.installed())


def test_train_lora_help_lists_the_options() -> None:
    result = ftdata("train", "lora", "--help")

    assert result.exit_code == 0
    for flag in ("--base-model", "-o, --option KEY=VALUE", "--qlora", "--merge", "--resume", "--resume-from",
                 "--dry-run", "--output", "--max-steps", "--json", "--store"):
        assert flag in result.stdout


def test_generate_needs_a_prompt_or_a_split(tmp_path: object) -> None:
    result = ftdata("generate", "some-run")

    assert result.exit_code == 2
    assert result.stderr == 'error: give a prompt (ftdata generate RUN_ID "question") or --split test\n'


def test_generate_for_an_unknown_run_is_a_plain_error(tmp_path: object) -> None:
    result = ftdata("generate", "nope", "hello", "--store", str(tmp_path))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: no run 'nope' in ")


def test_resume_without_a_checkpoint_says_so(support_store: Store) -> None:
    result = ftdata("train", "lora", "support@v1", "--store", str(support_store.root), "--resume")

    assert result.exit_code == 1
    assert "no lora run of support@v1 has a checkpoint to resume; start one without --resume" in result.stderr
