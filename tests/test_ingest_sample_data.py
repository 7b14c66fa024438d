"""The bundled sample data ingests as its README says, and its generator reproduces it byte for byte."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ftdata import frame as F
from ftdata.ingest import IngestOptions, ingest

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.fixture(scope="module")
def generator() -> Iterator[ModuleType]:
    """sample_data/generate.py loaded as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("sample_data_generate", SAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    path_before = list(sys.path)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.modules.pop("chats", None)
        sys.path[:] = path_before


def test_raw_csv_reads_every_row_with_its_category() -> None:
    result = ingest([SAMPLE / "raw.csv"], IngestOptions(label_col="category"))
    assert result.rejected.height == 0
    assert result.inputs[0]["rows"] == result.frame.height == 322
    assert result.inputs[0]["layout"] == "columns"
    counts = dict(result.frame.group_by(F.LABEL).len().iter_rows())
    assert counts == {
        "billing": 143,
        "invoicing": 64,
        "integrations": 38,
        "troubleshooting": 37,
        "account_security": 31,
        "data_privacy": 9,
    }
    answers = [json.loads(r)["messages"][1]["content"] for r in result.frame.get_column(F.RECORD)]
    assert sum(1 for a in answers if not a.strip()) == 6


def test_chat_jsonl_broken_lines_are_rejected_at_ingest() -> None:
    result = ingest([SAMPLE / "chat.jsonl"])
    assert result.inputs[0]["rows"] == 40
    assert list(result.rejected.select(F.LINE, F.REASON).iter_rows()) == [(6, "invalid_json"), (31, "invalid_json")]
    assert result.frame.height == 38


def test_generator_reproduces_the_committed_files(generator: ModuleType) -> None:
    rows, _ = generator.build_rows(generator.random.Random(generator.SEED))
    text, _ = generator.csv_text(rows)
    assert b"\xef\xbb\xbf" + text.encode("utf-8") == (SAMPLE / "raw.csv").read_bytes()
    system = (SAMPLE / "system_prompt.txt").read_text("utf-8").strip()
    lines, broken = generator.chat_lines(system)
    assert ("\n".join(lines) + "\n").encode("utf-8") == (SAMPLE / "chat.jsonl").read_bytes()
    assert sorted(broken) == [6, 13, 19, 26, 31, 37]
