"""`openai`: any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure OpenAI's v1 API, vLLM, Ollama,
LM Studio, ...) through the openai SDK.

Retries: the SDK retries 408/409/429/5xx and connection errors with exponential backoff, honouring
`retry-after` / `retry-after-ms` (up to two minutes); we raise its retry count. Concurrency comes from the
`synth` stage, which runs up to `concurrency` single-request calls at once on threads. The key comes from
OPENAI_API_KEY only; with a base URL and no key (a local server), a placeholder is sent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ftdata.pricing import chat_cost
from ftdata.synth.base import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    SynthError,
)

if TYPE_CHECKING:
    import httpx2
    import openai

DEFAULT_MODEL = "gpt-4.1-mini"
MAX_RETRIES = 6
REQUEST_TIMEOUT_S = 120.0
# Sent when a base URL is given and no key is set: local servers ignore it, the SDK insists on one.
KEYLESS_PLACEHOLDER = "no-key"

def api_key(base_url: str | None) -> str:
    """The key to send; SynthError when none is set and the endpoint is OpenAI's own."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if key:
        return key
    if base_url:
        return KEYLESS_PLACEHOLDER
    raise SynthError(
        "the openai generator needs OPENAI_API_KEY: export it, or give --synth-base-url for a server that "
        "needs no key (vLLM, Ollama, LM Studio), or use --synth-generator local"
    )


class OpenAIGenerator:
    name = "openai"
    batched = False
    structured = True

    def __init__(self, http_client: httpx2.Client | None = None, max_retries: int = MAX_RETRIES) -> None:
        # http_client: an httpx2 client to send requests through (a proxy setup, or a fake server in tests).
        self.http_client = http_client
        self.max_retries = max_retries
        self._clients: dict[str | None, openai.OpenAI] = {}
        self._lock = threading.Lock()

    def default_model(self) -> str:
        return DEFAULT_MODEL

    def check(self, settings: GenerationSettings) -> None:
        api_key(settings.base_url)
        try:
            import openai  # noqa: F401
        except ImportError:
            raise SynthError("the openai generator needs the openai package: pip install 'ftdata[openai]'") from None

    def _client(self, base_url: str | None) -> openai.OpenAI:
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                import openai

                client = openai.OpenAI(
                    api_key=api_key(base_url),
                    base_url=base_url,
                    max_retries=self.max_retries,
                    timeout=REQUEST_TIMEOUT_S,
                    http_client=self.http_client,
                )
                self._clients[base_url] = client
            return client

    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings,
                 on_reply: Callable[[], None] | None = None) -> list[GenerationResult]:
        client = self._client(settings.base_url)
        return [self._complete(client, request, settings) for request in requests]

    def _complete(self, client: openai.OpenAI, request: GenerationRequest, settings: GenerationSettings) -> GenerationResult:
        import openai

        kwargs: dict[str, Any] = {
            "model": settings.model,
            "messages": request.messages,
            "temperature": settings.temperature,
            "seed": request.seed,
        }
        # OpenAI's newer models take only max_completion_tokens; compatible servers know max_tokens.
        kwargs["max_completion_tokens" if settings.base_url is None else "max_tokens"] = settings.max_new_tokens
        if request.json_object:
            kwargs["response_format"] = {"type": "json_object"}
        if request.stop:
            kwargs["stop"] = list(request.stop)
        where = settings.base_url or "api.openai.com"
        try:
            completion = client.chat.completions.create(**kwargs)
        except openai.AuthenticationError as exc:
            raise SynthError(f"{where} rejected the API key ({exc.status_code}): check OPENAI_API_KEY") from None
        except openai.NotFoundError:
            raise SynthError(f"{where} has no model {settings.model!r} (404): check --synth-model") from None
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise SynthError(
                f"{where} still answered {exc.status_code} after {self.max_retries} retries: try again later "
                "(generations so far are cached, a re-run does not pay for them again) or lower --synth-concurrency"
            ) from None
        except openai.APIStatusError as exc:
            raise SynthError(f"{where} refused the request ({exc.status_code}): {exc.message}") from None
        except openai.APIConnectionError as exc:
            raise SynthError(f"cannot reach {where}: {exc}") from None
        if not completion.choices:
            raise SynthError(f"{where} answered with no choices for model {settings.model!r}")
        choice = completion.choices[0]
        usage = completion.usage
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        return GenerationResult(
            text=choice.message.content or "",
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=chat_cost(settings.model, tokens_in, tokens_out),
        )
