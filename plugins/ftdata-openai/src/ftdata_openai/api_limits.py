"""The fine-tuning API's published limits and choices, in one place (checked offline before any call)."""

from __future__ import annotations

METHODS: tuple[str, ...] = ("supervised", "dpo")
MIN_EXAMPLES = 10
MAX_FILE_BYTES = 512 * 1024 * 1024  # files.create limit for fine-tuning files
SUFFIX_MAX = 64
SEED_MAX = 2**31 - 1
METADATA_MAX_KEYS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512
# Above ~100 MB the Uploads API (parts of at most 64 MB) is the recommended path.
PARTS_THRESHOLD = 100 * 1024 * 1024
PART_SIZE = 64 * 1024 * 1024
