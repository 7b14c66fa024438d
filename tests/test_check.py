"""`ftdata check`: exit codes, `path:line: reason: detail` lines, --json, CSV flags, the pre-commit hook."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ftdata.check import check_command, check_files, main
from ftdata.cli import cli

DATA = Path(__file__).parent / "data" / "validation"
REPO = Path(__file__).parent.parent
LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<reason>[a-z_]+): (?P<detail>.+)$")


def run(*argv: str) -> Result:
    return CliRunner().invoke(cli, ["check", *argv], obj={}, catch_exceptions=False)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Copies of the data files in a temp dir that is also the working directory (short relative paths)."""
    for name in ("chat_ok", "invalid_weight", "last_message_not_assistant", "missing_tool_reply"):
        shutil.copy(DATA / f"{name}.jsonl", tmp_path / f"{name}.jsonl")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_clean_file_exits_0_with_summary_on_stderr(files: Path) -> None:
    result = run("chat_ok.jsonl")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "ftdata check: 1 file, 8 rows, no problems\n"


def test_problems_exit_3_one_line_each_sorted_by_path_and_line(files: Path) -> None:
    result = run("missing_tool_reply.jsonl", "invalid_weight.jsonl", "chat_ok.jsonl")
    assert result.exit_code == 3
    assert result.stdout.splitlines() == [
        "invalid_weight.jsonl:2: invalid_weight: messages[1].weight: 0.5 is not the integer 0 or 1",
        "missing_tool_reply.jsonl:2: missing_tool_reply: messages[1]: tool call 'call_2' has no tool reply "
        "before messages[3]",
    ]
    assert result.stderr.startswith("ftdata check: 3 files, 12 rows, 2 problems in 2 rows (")


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.jsonl")))
def test_every_data_file_gives_its_reason_on_line_two(name: str) -> None:
    report = check_files([str(DATA / f"{name}.jsonl")])
    expected = [] if name.endswith("_ok") else [(2, name)]
    assert [(f.line, f.reason) for f in report.findings] == expected


def test_reason_lines_through_the_cli(files: Path) -> None:
    for reason in ("invalid_weight", "last_message_not_assistant", "missing_tool_reply"):
        result = run(f"{reason}.jsonl")
        assert result.exit_code == 3
        (line,) = result.stdout.splitlines()
        match = LINE.match(line)
        assert match and match["path"] == f"{reason}.jsonl" and match["line"] == "2" and match["reason"] == reason


def test_a_row_with_several_problems_gets_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "multi.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": " ", "weight": 1}, {"role": "user", "content": "x"}]})
        + "\n",
        encoding="utf-8",
    )
    result = run(str(path))
    assert result.exit_code == 3
    reasons = [LINE.match(line)["reason"] for line in result.stdout.splitlines()]  # type: ignore[index]
    assert reasons == ["weight_on_non_assistant", "empty_content", "missing_assistant_message"]


def test_ingest_rejects_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path.write_bytes(good.encode() + b"\n{not json\n" + good.encode() + b"\n")
    result = run(str(path))
    assert result.exit_code == 3
    (line,) = result.stdout.splitlines()
    assert LINE.match(line)["line"] == "2"  # type: ignore[index]
    assert LINE.match(line)["reason"] == "invalid_json"  # type: ignore[index]


def test_json_output_is_one_document(files: Path) -> None:
    result = run("--json", "invalid_weight.jsonl", "chat_ok.jsonl")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document == {
        "ok": False,
        "files": ["invalid_weight.jsonl", "chat_ok.jsonl"],
        "rows": 10,
        "rows_with_problems": 1,
        "problems_by_reason": {"invalid_weight": 1},
        "problems": [{"path": "invalid_weight.jsonl", "line": 2, "reason": "invalid_weight",
                      "detail": "messages[1].weight: 0.5 is not the integer 0 or 1"}],
    }


def test_missing_file_exits_1_with_a_plain_message(files: Path) -> None:
    result = run("chat_ok.jsonl", "absent.jsonl")
    assert result.exit_code == 1
    assert result.stderr == "error: absent.jsonl: no such file\n"
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(files: Path) -> None:
    assert run().exit_code == 2
    assert run("--no-such-flag", "chat_ok.jsonl").exit_code == 2


def test_csv_checked_with_column_flags(tmp_path: Path) -> None:
    path = tmp_path / "support.csv"
    path.write_text("question,answer\nHow do I reset my password?,Open Settings.\nWhere is my invoice?,   \n",
                    encoding="utf-8")
    result = run("--user-col", "question", "--assistant-col", "answer", str(path))
    assert result.exit_code == 3
    (line,) = result.stdout.splitlines()
    match = LINE.match(line)
    assert match and (match["line"], match["reason"]) == ("3", "empty_content")
    assert result.stderr == "ftdata check: 1 file, 2 rows, 1 problem in 1 row (empty_content 1)\n"


def test_main_returns_exit_codes_pre_commit_style(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat_ok.jsonl"]) == 0
    assert main(["invalid_weight.jsonl"]) == 3
    assert capsys.readouterr().out == "invalid_weight.jsonl:2: invalid_weight: messages[1].weight: 0.5 is not the integer 0 or 1\n"
    assert main(["absent.jsonl"]) == 1
    assert main([]) == 2


def test_check_files_library_call(files: Path) -> None:
    report = check_files(["last_message_not_assistant.jsonl"])
    assert not report.ok and report.rows == 2
    assert [(f.line, f.reason) for f in report.findings] == [(2, "last_message_not_assistant")]


def test_check_command_standalone(files: Path) -> None:
    result = CliRunner().invoke(check_command, ["chat_ok.jsonl"])
    assert result.exit_code == 0


def test_pre_commit_hook_declaration() -> None:
    text = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert "- id: ftdata-check\n" in text
    assert "  entry: ftdata check\n" in text
    assert "  language: python\n" in text
    files = re.search(r"^  files: (.+)$", text, re.MULTILINE)
    assert files is not None
    pattern = re.compile(files.group(1))
    assert pattern.search("data/train.jsonl") and pattern.search("raw/support.csv")
    assert not pattern.search("notes.json") and not pattern.search("train.jsonl.bak")
