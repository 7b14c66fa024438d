"""On-disk cache of generations, keyed by (generator, model, endpoint, prompt, sampling params, seed).

Re-running a recipe reads every reply back instead of paying or waiting for it again, and gets the same
rows, so the content-addressed version id stays meaningful. One small JSON file per generation under
`<cache_dir>/synth/<key[:2]>/<key>.json`, written to a temporary name and renamed, so a run killed mid-write
never leaves a truncated entry (an unreadable entry is treated as a miss and overwritten).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import orjson

from ftdata.frame import canonical_json
from ftdata.synth.base import GenerationRequest, GenerationResult, GenerationSettings

# Bump when the meaning of a cached entry changes, so old entries stop matching.
CACHE_FORMAT = 2


def generation_key(generator: str, model: str, settings: GenerationSettings, request: GenerationRequest) -> str:
    """sha256 of everything that decides a reply (not batch size or concurrency, which only decide speed)."""
    key = {
        "format": CACHE_FORMAT,
        "generator": generator,
        "model": model,
        "base_url": settings.base_url,
        "messages": request.messages,
        "json_object": request.json_object,
        "stop": list(request.stop),
        "max_sentences": request.max_sentences,
        "temperature": settings.temperature,
        "max_new_tokens": settings.max_new_tokens,
        "seed": request.seed,
    }
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()


class GenerationCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> GenerationResult | None:
        try:
            return GenerationResult.from_json(orjson.loads(self._path(key).read_bytes()))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, result: GenerationResult) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_SORT_KEYS))
        os.replace(tmp, path)
