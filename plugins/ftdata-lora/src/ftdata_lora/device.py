"""Where and in what precision a run trains: pure decisions from what the machine has, testable anywhere.

CUDA: the base model is loaded in bf16 and the Trainer runs bf16 mixed precision (fp16 on GPUs without
bf16, e.g. T4/V100); peft keeps the LoRA weights in fp32 either way. QLoRA loads the base in 4-bit NF4
through bitsandbytes, which needs CUDA. CPU: fp32 by default; `precision=bf16` there loads fp32 weights
and runs the forward pass under bf16 autocast (faster on CPUs with bf16 support, slightly less exact).
Several GPUs: run the same command under `accelerate launch`; the Trainer shards the batches.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import Any


class DeviceError(RuntimeError):
    """The requested precision or QLoRA cannot run on this machine; the message says what would."""


@dataclass(frozen=True)
class Machine:
    cuda: bool
    cuda_bf16: bool = False
    mps: bool = False
    bitsandbytes: bool = False
    gpu_name: str | None = None


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda" | "mps" | "cpu"
    load_dtype: str  # dtype the base weights are loaded in: "float32" | "bfloat16" | "float16"
    bf16: bool  # TrainingArguments.bf16 (mixed precision / CPU autocast)
    fp16: bool  # TrainingArguments.fp16
    qlora: bool
    gradient_checkpointing: bool
    gpu_name: str | None = None

    @property
    def use_cpu(self) -> bool:
        return self.device == "cpu"

    def describe(self) -> str:
        mode = "QLoRA 4-bit NF4" if self.qlora else "LoRA"
        precision = "bf16" if self.bf16 else "fp16" if self.fp16 else "fp32"
        if self.device == "cpu" and self.bf16:
            precision = "fp32 weights, bf16 autocast"
        where = f"{self.device} ({self.gpu_name})" if self.gpu_name else self.device
        return f"{mode} on {where}, {precision}"

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


def detect_machine() -> Machine:
    import torch

    cuda = torch.cuda.is_available()
    return Machine(
        cuda=cuda,
        cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
        mps=bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
        bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
    )


def plan_device(machine: Machine, precision: str = "auto", qlora: bool = False,
                gradient_checkpointing: bool | None = None) -> DevicePlan:
    if qlora:
        if not machine.cuda:
            raise DeviceError(
                "--qlora loads the base model in 4-bit with bitsandbytes, which needs a CUDA GPU, and none was "
                "found; train without --qlora (plain LoRA) on this machine"
            )
        if not machine.bitsandbytes:
            raise DeviceError(
                "--qlora needs bitsandbytes: pip install 'ftdata-lora[qlora]' (or pip install bitsandbytes)"
            )
    if machine.cuda:
        device = "cuda"
        if precision == "auto":
            precision = "bf16" if machine.cuda_bf16 else "fp16"
        if precision == "bf16" and not machine.cuda_bf16:
            raise DeviceError(f"{machine.gpu_name or 'this GPU'} does not support bf16: use -o precision=fp16 or fp32")
        if qlora and precision == "fp32":
            raise DeviceError("--qlora computes in bf16 or fp16: use -o precision=auto, bf16 or fp16")
        load_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision]
        checkpointing = True if gradient_checkpointing is None else gradient_checkpointing
    else:
        device = "mps" if machine.mps else "cpu"
        if precision == "fp16":
            raise DeviceError("fp16 mixed precision needs a CUDA GPU: use -o precision=fp32 (or bf16 autocast on CPU)")
        if precision == "bf16" and device == "mps":
            raise DeviceError("bf16 autocast is not supported on Apple MPS here: use -o precision=fp32")
        if precision == "auto":
            precision = "fp32"
        load_dtype = "float32"  # CPU bf16 means autocast over fp32 weights, not bf16 weights
        checkpointing = bool(gradient_checkpointing)
    return DevicePlan(
        device=device,
        load_dtype=load_dtype,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        qlora=qlora,
        gradient_checkpointing=checkpointing,
        gpu_name=machine.gpu_name,
    )
