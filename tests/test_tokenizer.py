"""Token counting: offline encodings, counts equal to tiktoken's encoding of the rendered conversation."""

from __future__ import annotations

import socket
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tiktoken

from ftdata import tokenizer as T
from ftdata.frame import canonical_json

CONVERSATIONS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "system", "content": "You are a terse billing assistant."},
            {"role": "user", "content": "How do I download an invoice as PDF?"},
            {"role": "assistant", "content": "Open Billing, pick the invoice, press Download."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Who is on call?", "name": "ops_bot"},
            {"role": "assistant", "content": "Ana until 18:00 — then 李雷.\n\nPage them via #oncall."},
            {"role": "user", "content": [{"type": "text", "text": "And "}, {"type": "text", "text": "tomorrow?"}]},
            {"role": "assistant", "content": "Still Ana.", "weight": 0},
        ]
    },
    {
        "messages": [
            {"role": "developer", "content": "Call tools when you need data."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
            {"role": "assistant", "content": "21 °C and sunny."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    },
]


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_hf_tokenizer(directory: Path, template: str = CHAT_TEMPLATE) -> Path:
    """A word-level Hugging Face tokenizer with a chat template, saved like a model's tokenizer files."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    words = ["<s>", "[UNK]", *specials, *"hello there how are you fine thanks what is two plus four six".split()]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", unk_token="[UNK]", additional_special_tokens=specials
    )
    fast.chat_template = template
    fast.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def hf_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hf_tokenizer(tmp_path_factory.mktemp("hf_tokenizer"))


@cache
def framed(encoding: tiktoken.Encoding) -> tiktoken.Encoding:
    """The encoding plus the framing tokens of the rendered form (tiktoken's documented way to extend one)."""
    base = max(encoding.max_token_value, *encoding._special_tokens.values()) + 1
    names = ["<|start|>", "<|message|>", "<|end|>", "<|name|>"]
    return tiktoken.Encoding(
        name=f"{encoding.name}_framed",
        pat_str=encoding._pat_str,
        mergeable_ranks=encoding._mergeable_ranks,
        special_tokens={**encoding._special_tokens, **{n: base + i for i, n in enumerate(names)}},
    )


def text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p["text"] for p in content if p["type"] == "text")
    return content or ""


def render(messages: list[dict[str, Any]], tools: Any = None, priming: bool = True) -> str:
    """The conversation as the trainer sees it, in the cookbook's accounting (3 framing tokens a message)."""
    out = []
    for m in messages:
        name = f"<|name|>{m['name']}" if "name" in m else ""
        out.append(f"<|start|>{m['role']}{name}<|message|>{text_of(m.get('content'))}<|end|>")
        for call in m.get("tool_calls") or []:
            out.append(f"<|start|>{call['function']['name']}<|message|>{call['function']['arguments']}<|end|>")
    if tools:
        out.append(f"<|start|><|message|>{canonical_json(tools)}<|end|>")
    if priming:
        out.append("<|start|>assistant<|message|>")
    return "".join(out)


def rendered_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    return len(framed(encoding).encode(text, allowed_special="all"))


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_total_equals_tiktoken_encoding_of_the_rendered_conversation(name: str, index: int) -> None:
    encoding = T.get_encoding(name)
    record = CONVERSATIONS[index]
    expected = rendered_tokens(encoding, render(record["messages"], record.get("tools")))
    assert T.count_example(record, encoding).total == expected


def test_trained_counts_only_assistant_messages_with_nonzero_weight() -> None:
    encoding = T.get_encoding("o200k_base")
    record = CONVERSATIONS[1]
    counts = T.count_example(record, encoding)
    # The second assistant message has weight 0: only the first one is trained.
    assert counts.trained == len(encoding.encode_ordinary("Ana until 18:00 — then 李雷.\n\nPage them via #oncall."))
    unweighted = {"messages": [{k: v for k, v in m.items() if k != "weight"} for m in record["messages"]]}
    assert T.count_example(unweighted, encoding).trained == counts.trained + len(encoding.encode_ordinary("Still Ana."))
    assert T.count_example(unweighted, encoding).total == counts.total


def test_tool_calls_are_trained_and_tool_results_are_not() -> None:
    encoding = T.get_encoding("o200k_base")
    counts = T.count_example(CONVERSATIONS[2], encoding)
    call = T.TOKENS_PER_MESSAGE + len(encoding.encode_ordinary("get_weather")) + len(
        encoding.encode_ordinary('{"city": "Paris"}')
    )
    assert counts.trained == call + len(encoding.encode_ordinary("21 °C and sunny."))


def test_preference_row_counts_the_prompt_and_both_outputs() -> None:
    encoding = T.get_encoding("o200k_base")
    prompt = [{"role": "user", "content": "Summarise: the meeting moved to Friday."}]
    preferred = [{"role": "assistant", "content": "Meeting moved to Friday."}]
    rejected = [{"role": "assistant", "content": "There was a meeting, and it has now been moved, to Friday."}]
    record = {"input": {"messages": prompt}, "preferred_output": preferred, "non_preferred_output": rejected}
    expected = (
        rendered_tokens(encoding, render(prompt))
        + rendered_tokens(encoding, render(preferred, priming=False))
        + rendered_tokens(encoding, render(rejected, priming=False))
    )
    counts = T.count_example(record, encoding)
    assert counts.total == expected
    assert counts.trained == len(encoding.encode_ordinary(preferred[0]["content"])) + len(
        encoding.encode_ordinary(rejected[0]["content"])
    )


def test_get_encoding_needs_no_network_and_no_tiktoken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken.load

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network or tiktoken download path used")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)
    T.get_encoding.cache_clear()
    try:
        encoding = T.get_encoding("o200k_base")
        assert encoding.encode("hello world") == [24912, 2375]
        assert T.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    finally:
        T.get_encoding.cache_clear()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_encoding_matches_tiktokens_own_definition(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same pattern and special tokens as tiktoken_ext.openai_public (its rank download replaced by ours)."""
    from tiktoken_ext import openai_public

    ours = T.get_encoding(name)
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: ours._mergeable_ranks)
    theirs = getattr(openai_public, name)()
    assert ours._pat_str == theirs["pat_str"]
    assert ours._special_tokens == theirs["special_tokens"]


def test_unknown_encoding_and_tokenizer_are_plain_errors() -> None:
    with pytest.raises(T.TokenizerError, match="unknown encoding 'p50k_base'"):
        T.get_encoding("p50k_base")
    with pytest.raises(T.TokenizerError, match="unknown tokenizer 'gpt2'"):
        T.resolve_tokenizer("gpt-4.1-mini", "gpt2")


def test_resolve_tokenizer_follows_the_model() -> None:
    assert T.resolve_tokenizer("gpt-4.1-mini-2025-04-14") == "o200k_base"
    assert T.resolve_tokenizer("gpt-3.5-turbo-0125") == "cl100k_base"
    assert T.resolve_tokenizer("hf:/models/smol") == "hf:/models/smol"
    assert T.resolve_tokenizer("gpt-4o-mini", "hf:/models/smol") == "hf:/models/smol"


def test_counting_in_worker_processes_equals_counting_here() -> None:
    texts = pl.Series([canonical_json(c) for c in CONVERSATIONS] * 8)
    serial = T.count_records("o200k_base", texts, workers=1)
    parallel = T.count_records("o200k_base", texts, workers=2, parallel_min_bytes=1, chunk_rows=5)
    assert parallel == serial
    assert len(serial.totals) == 24 and serial.errors == {}


def test_hf_counts_follow_the_chat_template(hf_tokenizer_dir: Path) -> None:
    tokenizer = T.load_hf_tokenizer(str(hf_tokenizer_dir))
    messages = [
        {"role": "user", "content": "hello how are you"},
        {"role": "assistant", "content": "fine thanks"},
        {"role": "user", "content": "what is two plus four"},
        {"role": "assistant", "content": "six", "weight": 0},
    ]
    counts = T.count_example_hf({"messages": messages}, tokenizer)
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
    assert counts.total == len(tokenizer.apply_chat_template(plain)["input_ids"]) == 21
    # "fine thanks <|end|>" is the one trained turn; "six" has weight 0.
    assert counts.trained == 3


def test_hf_tokenizer_without_files_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(T.TokenizerError, match="cannot load tokenizer"):
        T.load_hf_tokenizer(str(tmp_path / "missing"))


@pytest.mark.slow
def test_hf_counts_with_the_bundled_smollm2_gguf_tokenizer() -> None:
    pytest.importorskip("gguf")
    from ftdata.models import ModelNotAvailable, bundled_gguf_path

    try:
        path = bundled_gguf_path()
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))
    tokenizer = T.load_hf_tokenizer(str(path))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6.", "weight": 0},
    ]
    counts = T.count_example_hf({"messages": messages}, tokenizer)
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
    assert counts.total == len(tokenizer.apply_chat_template(plain)["input_ids"])
    # ChatML: the trained span is the first answer through its <|im_end|> and newline.
    assert counts.trained == len(tokenizer("It is 4.<|im_end|>\n", add_special_tokens=False)["input_ids"])
