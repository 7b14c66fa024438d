"""ftdata: curate LLM fine-tuning datasets into clean, versioned train/validation/test splits."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import datasets


def load_hf(ref: str, store: str | None = None) -> datasets.DatasetDict:
    """Load a version's splits as a `datasets.DatasetDict` (e.g. `ftdata.load_hf("support@latest")`)."""
    from ftdata.hf import load_hf as _load_hf

    return _load_hf(ref, store)
