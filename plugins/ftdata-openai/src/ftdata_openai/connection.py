"""Where the fine-tuning API lives (OpenAI, Azure OpenAI, any compatible base URL) and how to reach it.

`Endpoint` is what a run record keeps, so `ftdata runs watch` can reconnect later; the key is read from
the environment each time and never stored. `Connection` carries the runtime knobs a caller may inject:
an `httpx2.Client` (tests pass one with a `MockTransport`), the SDK's retry budget, the sleep used
between polls (so tests run without waiting) and the size above which uploads go in parts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ftdata_openai.api_limits import PART_SIZE, PARTS_THRESHOLD
from ftdata_openai.errors import TrainerError

if TYPE_CHECKING:
    import httpx2
    import openai

DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY = "OPENAI_API_KEY"
AZURE_KEY = "AZURE_OPENAI_API_KEY"
AZURE_AD_TOKEN = "AZURE_OPENAI_AD_TOKEN"
AZURE_ENDPOINT = "AZURE_OPENAI_ENDPOINT"
API_VERSION = "OPENAI_API_VERSION"
BASE_URL = "OPENAI_BASE_URL"
# The click context object key under which an embedding program (or a test) passes a `Connection`.
CONTEXT_KEY = "openai_connection"


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    azure_endpoint: str | None = None
    api_version: str | None = None

    @property
    def is_azure(self) -> bool:
        return self.azure_endpoint is not None

    @property
    def is_openai(self) -> bool:
        """api.openai.com itself, where the model list and the platform cutoff apply."""
        return self.base_url.rstrip("/") == DEFAULT_BASE_URL

    @property
    def key_variable(self) -> str:
        return AZURE_KEY if self.is_azure else OPENAI_KEY

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"base_url": self.base_url}
        if self.is_azure:
            record["azure"] = {"endpoint": self.azure_endpoint, "api_version": self.api_version}
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Endpoint:
        azure = record.get("azure") or {}
        return cls(
            base_url=record.get("base_url") or DEFAULT_BASE_URL,
            azure_endpoint=azure.get("endpoint"),
            api_version=azure.get("api_version"),
        )


def resolve_endpoint(
    base_url: str | None,
    azure: bool,
    azure_endpoint: str | None,
    api_version: str | None,
    env: Mapping[str, str] = os.environ,
) -> Endpoint:
    """Flags first, then the environment variables users of the SDK already have."""
    if azure:
        if base_url:
            raise click.UsageError("--base-url and --azure are exclusive: Azure builds its URL from --azure-endpoint")
        endpoint = azure_endpoint or env.get(AZURE_ENDPOINT)
        version = api_version or env.get(API_VERSION)
        if not endpoint:
            raise click.UsageError(f"--azure needs --azure-endpoint or {AZURE_ENDPOINT}")
        if not version:
            raise click.UsageError(f"--azure needs --api-version or {API_VERSION}")
        endpoint = endpoint.rstrip("/")
        return Endpoint(base_url=f"{endpoint}/openai", azure_endpoint=endpoint, api_version=version)
    if azure_endpoint or api_version:
        raise click.UsageError("--azure-endpoint and --api-version need --azure")
    return Endpoint(base_url=(base_url or env.get(BASE_URL) or DEFAULT_BASE_URL).rstrip("/"))


@dataclass
class Connection:
    http_client: httpx2.Client | None = None
    max_retries: int = 5  # the SDK retries 408/409/429/5xx with backoff and honours retry-after
    sleep: Callable[[float], None] = time.sleep
    poll_initial_s: float = 5.0
    poll_max_s: float = 60.0
    file_wait_max_s: float = 30 * 60
    parts_threshold: int = PARTS_THRESHOLD  # bytes above which files go through the Uploads API
    part_size: int = PART_SIZE
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)


def connection_from_context() -> Connection:
    """The `Connection` in the click context object when one was passed, else the default."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(dict) if ctx is not None else None
    found = obj.get(CONTEXT_KEY) if obj else None
    return found if isinstance(found, Connection) else Connection()


def require_key(endpoint: Endpoint, env: Mapping[str, str]) -> None:
    if env.get(endpoint.key_variable) or (endpoint.is_azure and env.get(AZURE_AD_TOKEN)):
        return
    where = f"Azure OpenAI at {endpoint.azure_endpoint}" if endpoint.is_azure else endpoint.base_url
    alternative = f" (or {AZURE_AD_TOKEN})" if endpoint.is_azure else ""
    raise TrainerError(f"no API key: set {endpoint.key_variable}{alternative} to use the fine-tuning API at {where}")


def make_client(endpoint: Endpoint, connection: Connection) -> openai.OpenAI:
    import openai

    env = connection.env
    require_key(endpoint, env)
    common: dict[str, Any] = {"max_retries": connection.max_retries, "http_client": connection.http_client}
    if endpoint.is_azure:
        credentials = (
            {"api_key": env[AZURE_KEY]} if env.get(AZURE_KEY) else {"azure_ad_token": env[AZURE_AD_TOKEN]}
        )
        return openai.AzureOpenAI(
            azure_endpoint=endpoint.azure_endpoint, api_version=endpoint.api_version, **credentials, **common
        )
    return openai.OpenAI(api_key=env[OPENAI_KEY], base_url=endpoint.base_url, **common)
