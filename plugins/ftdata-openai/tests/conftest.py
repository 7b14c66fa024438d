"""Fixtures: a dataset version written by hand, the fake API, a Connection that reaches it, a CLI runner."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner, Result
from ftdata.store import Store, Version

from ftdata_openai.cli import train_command
from ftdata_openai.connection import CONTEXT_KEY, Connection

# pytest runs in importlib mode here (no test directory on sys.path); the helper modules beside this file
# have names no other test directory uses.
sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI  # noqa: E402
from openai_testdata import API_KEY, chat_row, write_version  # noqa: E402

SDK_ENVIRONMENT = (
    "OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
    "OPENAI_CUSTOM_HEADERS", "OPENAI_API_VERSION", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN",
    "AZURE_OPENAI_ENDPOINT", "FTDATA_STORE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own keys and endpoints must never reach a test (or leak into its files)."""
    for name in SDK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "datasets")


@pytest.fixture
def chat_version(store: Store) -> Version:
    return write_version(store, [chat_row(i) for i in range(24)], [chat_row(i) for i in range(100, 106)])


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(API_KEY)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connection(fake: FakeOpenAI, sleeps: list[float]) -> Iterator[Connection]:
    client = httpx2.Client(transport=fake.transport())
    yield Connection(
        http_client=client, max_retries=2, sleep=sleeps.append, poll_initial_s=1.0, poll_max_s=8.0,
        env={"OPENAI_API_KEY": API_KEY},
    )
    client.close()


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(store: Store, connection: Connection) -> Invoke:
    def run(*args: str, connection_: Connection | None = None) -> Result:
        obj = {"store": store, CONTEXT_KEY: connection_ or connection}
        return CliRunner().invoke(train_command, list(args), obj=obj)

    return run
