"""The loss mask: prompt tokens and `weight: 0` answers get label -100; trained answers keep their ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lora_testdata import write_version

from ftdata.store import Store
from ftdata_lora.encoding import EncodeError, encode_chat, mask_spans
from ftdata_lora.templates import TrainingTemplate, training_template
from ftdata_lora.train import TrainRequest, build_trainer, prepare

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Lyon, I think.", "weight": 0},
    {"role": "user", "content": "Are you sure?"},
    {"role": "assistant", "content": "Paris."},
]
ADJACENT = TrainingTemplate(
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}"
    "{% else %}{{ m['content'] }}{% endif %}{% endfor %}",
    "option:adjacent.jinja",
)
UNMARKED_ASSISTANT = TrainingTemplate(
    "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if false %}{% generation %}{% endgeneration %}{% endif %}",
    "option:empty.jinja",
)


def trained_text(tokenizer: Any, input_ids: list[int], flags: list[bool]) -> list[str]:
    """The text of each run of trained tokens."""
    return [tokenizer.decode(input_ids[start:end]) for start, end in mask_spans([int(f) for f in flags])]


def test_weight_zero_answer_is_cleared_from_the_mask(tokenizer: Any) -> None:
    template = training_template(tokenizer)

    encoded = encode_chat(tokenizer, template, CONVERSATION)

    assert trained_text(tokenizer, encoded.input_ids, [bool(b) for b in encoded.assistant_masks]) == ["Paris.<|im_end|>"]
    assert tokenizer.decode(encoded.input_ids) == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)


def test_without_weights_every_answer_is_trained(tokenizer: Any) -> None:
    unweighted = [{k: v for k, v in m.items() if k != "weight"} for m in CONVERSATION]

    encoded = encode_chat(tokenizer, training_template(tokenizer), unweighted)

    assert trained_text(tokenizer, encoded.input_ids, [bool(b) for b in encoded.assistant_masks]) == [
        "Lyon, I think.<|im_end|>", "Paris.<|im_end|>"
    ]


def test_weights_that_cannot_be_located_are_an_error(tokenizer: Any) -> None:
    back_to_back = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "draft", "weight": 0},
        {"role": "assistant", "content": "final"},
    ]

    with pytest.raises(EncodeError, match="marks 1 assistant spans for 2 assistant messages"):
        encode_chat(tokenizer, ADJACENT, back_to_back)


def test_a_template_marking_no_answer_is_an_error_not_a_prompt_trained_example(tokenizer: Any) -> None:
    with pytest.raises(EncodeError, match="marks no assistant tokens"):
        encode_chat(tokenizer, UNMARKED_ASSISTANT, CONVERSATION)


def test_sft_trainer_batches_carry_labels_only_on_trained_answers(tmp_path: Path, bundled_model: str) -> None:
    write_version(tmp_path, "quiz", "v1", {"train": [{"messages": CONVERSATION}]})
    prepared = prepare(TrainRequest(ref="quiz@v1", store=Store(tmp_path), option_pairs=("max_length=128",)))
    rows = prepared.preflight.splits["train"].trainable()

    trainer = build_trainer(prepared, rows, [], tmp_path / "checkpoints", max_steps=1)
    batch = next(iter(trainer.get_train_dataloader()))

    input_ids = batch["input_ids"][0].tolist()
    labels = batch["labels"][0].tolist()
    tokenizer = prepared.tokenizer
    assert trained_text(tokenizer, input_ids, [label != -100 for label in labels]) == ["Paris.<|im_end|>"]
    assert all(label in (-100, token) for label, token in zip(labels, input_ids, strict=True))
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert tokenizer.decode(input_ids) == rendered  # TRL used our tokens as they are
    prompt_and_weight_zero = [t for t, label in zip(input_ids, labels, strict=True) if label == -100]
    assert "Lyon, I think." in tokenizer.decode(prompt_and_weight_zero)
    assert "Capital of France?" in tokenizer.decode(prompt_and_weight_zero)
