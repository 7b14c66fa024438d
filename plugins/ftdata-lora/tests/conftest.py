"""Fixtures: a small dataset version written by hand (manifest + JSONL) and the bundled model's tokenizer."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftdata.store import Store

# pytest runs in importlib mode (no test directory on sys.path); the helper module beside this file has a
# name no other test directory uses.
sys.path.insert(0, str(Path(__file__).parent))

from lora_testdata import support_rows, write_version  # noqa: E402

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def support_store(tmp_path: Path) -> Store:
    """`support@v1`: 26 train / 6 validation rows of one fixed answer style."""
    rows = support_rows()
    validation = rows[::5][:6]
    train = [r for r in rows if r not in validation]
    write_version(tmp_path / "store", "support", "v1", {"train": train, "validation": validation})
    return Store(tmp_path / "store")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on a CPU shared with other jobs, two spinning threads made steps ~4x slower here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bundled_model() -> str:
    """The bundled SmolLM2-135M-Instruct directory (built once into FTDATA_CACHE, reused after)."""
    from ftdata.models import ModelNotAvailable, bundled_model_dir

    try:
        return str(bundled_model_dir())
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tokenizer(bundled_model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model)
