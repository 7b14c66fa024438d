"""`-o key=value` options: typed, validated, unknown keys refused with the list of known ones."""

from __future__ import annotations

import pytest

from ftdata_lora.options import LoraOptions, OptionsError, parse_options


def test_defaults_match_the_documented_ones() -> None:
    options = parse_options([])

    assert (options.r, options.alpha, options.dropout, options.target_modules) == (16, 32, 0.05, "all-linear")
    assert (options.epochs, options.lr, options.max_length) == (3, 2e-4, 1024)
    assert options.eval_steps is None and options.precision == "auto"


def test_values_are_typed_and_a_later_pair_wins() -> None:
    options = parse_options(["r=8", "lr=1e-3", "epochs=2", "r=4", "gradient_checkpointing=true", "eval_steps=5"])

    assert options.r == 4 and options.lr == 1e-3 and options.epochs == 2
    assert options.gradient_checkpointing is True and options.eval_steps == 5


def test_target_modules_all_linear_or_a_list() -> None:
    assert parse_options([]).target_module_list() == "all-linear"
    assert parse_options(["target_modules=q_proj, v_proj"]).target_module_list() == ["q_proj", "v_proj"]


def test_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(OptionsError) as excinfo:
        parse_options(["rank=8"])

    message = str(excinfo.value)
    assert message.startswith("unknown option 'rank' (known: r, alpha, dropout, target_modules, epochs, lr,")


def test_bad_value_names_the_key_and_the_value() -> None:
    with pytest.raises(OptionsError, match=r"^-o lr=fast: Input should be a valid number"):
        parse_options(["lr=fast"])
    with pytest.raises(OptionsError, match=r"^-o dropout=1.5: Input should be less than 1"):
        parse_options(["dropout=1.5"])
    with pytest.raises(OptionsError, match=r"^-o precision=fp8: Input should be 'auto', 'fp32', 'bf16' or 'fp16'"):
        parse_options(["precision=fp8"])


def test_pair_without_equals_sign_is_refused() -> None:
    with pytest.raises(OptionsError, match="-o expects key=value, got 'r16'"):
        parse_options(["r16"])


def test_resumed_options_are_the_base_and_an_empty_value_resets() -> None:
    recorded = LoraOptions(r=8, eval_steps=4).model_dump(mode="json")

    options = parse_options(["lr=1e-3", "eval_steps="], base=recorded)

    assert options.r == 8 and options.lr == 1e-3 and options.eval_steps is None
