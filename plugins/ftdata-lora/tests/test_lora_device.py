"""Device and precision decisions for CUDA, CPU and MPS machines (pure logic: no GPU needed to test)."""

from __future__ import annotations

import pytest

from ftdata_lora.device import DeviceError, Machine, plan_device

CPU = Machine(cuda=False)
AMPERE = Machine(cuda=True, cuda_bf16=True, bitsandbytes=True, gpu_name="NVIDIA A100")
TURING = Machine(cuda=True, cuda_bf16=False, bitsandbytes=True, gpu_name="Tesla T4")
MAC = Machine(cuda=False, mps=True)


def test_cpu_defaults_to_fp32_without_checkpointing() -> None:
    plan = plan_device(CPU)

    assert (plan.device, plan.load_dtype, plan.bf16, plan.fp16, plan.use_cpu) == ("cpu", "float32", False, False, True)
    assert plan.gradient_checkpointing is False
    assert plan.describe() == "LoRA on cpu, fp32"


def test_cpu_bf16_is_autocast_over_fp32_weights() -> None:
    plan = plan_device(CPU, precision="bf16")

    assert (plan.load_dtype, plan.bf16) == ("float32", True)
    assert plan.describe() == "LoRA on cpu, fp32 weights, bf16 autocast"


def test_cuda_defaults_to_a_bf16_base_with_bf16_mixed_precision_and_checkpointing() -> None:
    plan = plan_device(AMPERE)

    assert (plan.device, plan.load_dtype, plan.bf16, plan.fp16, plan.use_cpu) == ("cuda", "bfloat16", True, False, False)
    assert plan.gradient_checkpointing is True
    assert plan.describe() == "LoRA on cuda (NVIDIA A100), bf16"


def test_cuda_without_bf16_falls_back_to_fp16() -> None:
    plan = plan_device(TURING)

    assert (plan.load_dtype, plan.bf16, plan.fp16) == ("float16", False, True)
    with pytest.raises(DeviceError, match="Tesla T4 does not support bf16"):
        plan_device(TURING, precision="bf16")


def test_qlora_on_cuda_is_4bit_with_bf16_compute() -> None:
    plan = plan_device(AMPERE, qlora=True, gradient_checkpointing=False)

    assert (plan.qlora, plan.load_dtype, plan.bf16, plan.gradient_checkpointing) == (True, "bfloat16", True, False)
    assert plan.describe() == "QLoRA 4-bit NF4 on cuda (NVIDIA A100), bf16"
    with pytest.raises(DeviceError, match="--qlora computes in bf16 or fp16"):
        plan_device(AMPERE, precision="fp32", qlora=True)


def test_qlora_without_cuda_says_what_to_do_instead() -> None:
    with pytest.raises(DeviceError) as excinfo:
        plan_device(CPU, qlora=True)

    assert "needs a CUDA GPU, and none was found; train without --qlora" in str(excinfo.value)


def test_qlora_without_bitsandbytes_gives_the_install_hint() -> None:
    with pytest.raises(DeviceError, match=r"pip install 'ftdata-lora\[qlora\]'"):
        plan_device(Machine(cuda=True, cuda_bf16=True, bitsandbytes=False), qlora=True)


def test_fp16_needs_cuda_and_mps_trains_in_fp32() -> None:
    with pytest.raises(DeviceError, match="fp16 mixed precision needs a CUDA GPU"):
        plan_device(CPU, precision="fp16")
    plan = plan_device(MAC)
    assert (plan.device, plan.load_dtype, plan.bf16, plan.use_cpu) == ("mps", "float32", False, False)
