"""Which marked chat template a run trains with, and that ftdata's ChatML one renders like the model's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from lora_testdata import support_rows

from ftdata_lora.templates import (
    TemplateError,
    has_generation_markers,
    renders_like_original,
    training_template,
)

CHATML_WITHOUT_DEFAULT_SYSTEM = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BRACKETS = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"

CONVERSATIONS: list[list[dict[str, Any]]] = [
    *[row["messages"] for row in support_rows()[:4]],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    [
        {"role": "user", "content": "Quote: \"it's\" \\ back\\slash {{ not jinja }}"},
        {"role": "assistant", "content": "Noted: «ünïcödé» — and\nnew lines", "weight": 0},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "  padded  "},
    ],
]


def with_template(tokenizer: Any, template: str) -> Any:
    copied = copy.deepcopy(tokenizer)
    copied.chat_template = template
    return copied


def test_smollm2_gets_the_marked_chatml_template(tokenizer: Any) -> None:
    template = training_template(tokenizer)

    assert template.source == "ftdata-chatml"
    assert has_generation_markers(template.text)
    assert "'You are a helpful AI assistant named SmolLM, trained by Hugging Face'" in template.text


@pytest.mark.parametrize("generation_prompt", [False, True])
def test_marked_chatml_renders_exactly_like_smollm2s_template(tokenizer: Any, generation_prompt: bool) -> None:
    template = training_template(tokenizer)

    for messages in CONVERSATIONS:
        prompt = messages[:-1] if generation_prompt else messages
        original = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=generation_prompt)
        marked = tokenizer.apply_chat_template(
            prompt, chat_template=template.text, tokenize=False, add_generation_prompt=generation_prompt
        )
        assert marked == original
        assert renders_like_original(tokenizer, template, messages)


def test_marked_chatml_trains_answer_and_end_of_turn_only(tokenizer: Any) -> None:
    template = training_template(tokenizer)
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]

    out = tokenizer.apply_chat_template(messages, chat_template=template.text, return_dict=True,
                                        return_assistant_tokens_mask=True)
    trained = [t for t, bit in zip(out["input_ids"], out["assistant_masks"], strict=True) if bit]

    assert tokenizer.decode(trained) == "Hello there<|im_end|>"


def test_chatml_without_a_default_system_prompt_is_recognised(tokenizer: Any) -> None:
    plain = with_template(tokenizer, CHATML_WITHOUT_DEFAULT_SYSTEM)

    template = training_template(plain)

    assert template.source == "ftdata-chatml"
    messages = CONVERSATIONS[4]
    assert plain.apply_chat_template(messages, chat_template=template.text, tokenize=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    )


def test_a_template_with_markers_is_used_as_it_is(tokenizer: Any) -> None:
    marked = training_template(tokenizer).text
    own = with_template(tokenizer, marked)

    assert training_template(own).source == "model"


def test_a_known_family_gets_trls_training_template(tokenizer: Any) -> None:
    from trl.chat_template_utils import qwen2_5_chat_template, qwen2_5_training_chat_template

    qwen = with_template(tokenizer, qwen2_5_chat_template)

    template = training_template(qwen)

    assert (template.source, template.text) == ("trl", qwen2_5_training_chat_template)


def test_unknown_unmarked_template_is_refused_rather_than_training_on_prompts(tokenizer: Any) -> None:
    with pytest.raises(TemplateError, match="pass -o chat_template=FILE.jinja"):
        training_template(with_template(tokenizer, BRACKETS))


def test_template_option_must_carry_markers(tokenizer: Any, tmp_path: Path) -> None:
    unmarked = tmp_path / "plain.jinja"
    unmarked.write_text(BRACKETS, encoding="utf-8")
    marked = tmp_path / "marked.jinja"
    marked.write_text(training_template(tokenizer).text, encoding="utf-8")

    with pytest.raises(TemplateError, match=r"plain.jinja: no \{% generation %\} markers"):
        training_template(tokenizer, str(unmarked))
    with pytest.raises(TemplateError, match="-o chat_template=.*missing.jinja: No such file"):
        training_template(tokenizer, str(tmp_path / "missing.jinja"))
    assert training_template(tokenizer, str(marked)).source == f"option:{marked}"
