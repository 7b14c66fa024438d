"""The openai generator against a fake Chat Completions endpoint (httpx2.MockTransport at the HTTP level)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import orjson
import polars as pl
import pytest
from factories import chat

from ftdata import frame as F
from ftdata.pricing import chat_cost
from ftdata.stage import Context, Progress
from ftdata.synth.base import GenerationRequest, GenerationSettings, SynthError
from ftdata.synth.cache import GenerationCache
from ftdata.synth.execute import CandidateRunner, SpendCap, run_candidates
from ftdata.synth.openai_generator import OpenAIGenerator
from ftdata.synth.plan import collect_seeds, plan_candidates
from ftdata.synth.stage import META, STAGE, SynthConfig, synthesize

SYSTEM = "You are the support assistant of Acme Cloud."
WORDS = ["invoice", "refund", "password", "login", "export", "team", "plan", "upgrade", "browser", "mobile", "token", "webhook", "storage", "quota", "folder", "share", "backup", "restore", "calendar", "timezone", "currency", "receipt", "discount", "trial", "seat", "admin", "domain", "email", "alert", "report", "chart", "filter", "import", "sync", "device", "tablet", "printer", "network", "proxy", "region", "language", "theme"]


def unique_text(seed: int, words: int = 14) -> str:
    """Distinct text per seed (random word choice): no two requests reply near-duplicates of each other."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def example_reply(body: dict[str, Any], number: int) -> str:
    seed = body["seed"]
    return json.dumps({"user": unique_text(seed) + "?", "assistant": unique_text(seed + 1, 24) + "."})


class FakeChatCompletions:
    """A Chat Completions endpoint: `reply(body, number)` makes the text; records every request."""

    def __init__(
        self,
        reply: Callable[[dict[str, Any], int], str] = example_reply,
        usage: tuple[int, int] = (1000, 500),
        delay_s: float = 0.0,
        failures: list[httpx2.Response] | None = None,
        finish_reason: str = "stop",
        response_cls: Any = httpx2.Response,
    ) -> None:
        # response_cls: httpx.Response when served through pytest-httpx2's respx router.
        self.response_cls = response_cls
        self.reply = reply
        self.usage = usage
        self.delay_s = delay_s
        self.failures = list(failures or [])
        self.finish_reason = finish_reason
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path.endswith("/chat/completions")
        body = json.loads(request.content)
        with self.lock:
            number = len(self.bodies)
            self.bodies.append(body)
            self.times.append(time.monotonic())
            failure = self.failures.pop(0) if self.failures else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if failure is not None:
                return failure
            time.sleep(self.delay_s)
            text = self.reply(body, number)
            prompt_tokens, completion_tokens = self.usage
            return self.response_cls(200, json={
                "id": f"chatcmpl-{number}", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": self.finish_reason, "logprobs": None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            })
        finally:
            with self.lock:
                self.in_flight -= 1

    def generator(self) -> OpenAIGenerator:
        return OpenAIGenerator(http_client=httpx2.Client(transport=httpx2.MockTransport(self)))


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


@pytest.fixture
def support_frame() -> pl.DataFrame:
    topics = [
        ("billing", "Why did my card get charged twice for the March invoice?", "The first charge was a pending authorisation; it drops off within five days."),
        ("billing", "Can I add my company VAT number to past invoices?", "Add it under Billing, Tax details and we reissue invoices from this year on request."),
        ("billing", "How do I switch from monthly to yearly billing?", "Choose Billing, Plan, Switch to yearly; the unused month is credited to the new plan."),
        ("login", "The reset link in my email says it expired.", "Links last one hour; ask for a new one on the sign-in page and use it straight away."),
        ("login", "How do I turn on two-factor authentication?", "Open Security, Two-factor, scan the QR code with an authenticator app and confirm."),
        ("login", "I lost my phone with the authenticator app on it.", "Use one of your backup codes, then remove the old device under Security."),
    ]
    rows = [
        {F.RECORD: F.canonical_json(chat(user, answer, SYSTEM)), F.SOURCE: "support.jsonl", F.LINE: i + 1, F.LABEL: label}
        for i, (label, user, answer) in enumerate(topics)
    ]
    return F.make_frame(rows)


def context(tmp_path: Path) -> Context:
    return Context(seed=0, cache_dir=tmp_path / "cache")


def settings(**overrides: Any) -> GenerationSettings:
    return GenerationSettings(**{"model": "gpt-4.1-mini", "temperature": 0.7, "max_new_tokens": 200, **overrides})


# --- the generator alone ---------------------------------------------------------------------------------

def test_missing_key_is_a_clear_error_unless_a_keyless_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    generator = OpenAIGenerator()
    with pytest.raises(SynthError, match="needs OPENAI_API_KEY: export it, or give --synth-base-url"):
        generator.check(settings())
    generator.check(settings(base_url="http://localhost:11434/v1"))
    with pytest.raises(ValueError, match="needs OPENAI_API_KEY"):
        STAGE.config_from_cli({"synth": 5, "synth_generator": "openai"})  # type: ignore[misc]


def test_default_generator_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SynthConfig(n=1).generator == "openai"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert SynthConfig(n=1).generator == "local"
    assert SynthConfig(n=1, base_url="http://localhost:8000/v1").generator == "openai"


def test_request_asks_for_json_with_the_seed_and_token_cap() -> None:
    fake = FakeChatCompletions()
    request = GenerationRequest([{"role": "user", "content": "hi"}], seed=42, json_object=True)
    [result] = fake.generator().generate([request], settings())
    body = fake.bodies[0]
    assert body["response_format"] == {"type": "json_object"}
    assert body["seed"] == 42 and body["max_completion_tokens"] == 200 and body["model"] == "gpt-4.1-mini"
    assert (result.tokens_in, result.tokens_out, result.finish_reason) == (1000, 500, "stop")
    assert result.cost_usd == pytest.approx((1000 * 0.40 + 500 * 1.60) / 1e6)


def test_compatible_servers_get_max_tokens_and_stop_strings() -> None:
    fake = FakeChatCompletions()
    fake.generator().generate([GenerationRequest([{"role": "user", "content": "hi"}], seed=1, stop=("\n",))],
                              settings(base_url="http://vllm.local/v1", model="qwen"))
    assert fake.bodies[0]["max_tokens"] == 200 and "max_completion_tokens" not in fake.bodies[0]
    assert fake.bodies[0]["stop"] == ["\n"] and "response_format" not in fake.bodies[0]


def test_rate_limits_and_server_errors_are_retried_honouring_retry_after() -> None:
    fake = FakeChatCompletions(failures=[
        httpx2.Response(429, headers={"retry-after-ms": "60"}, json={"error": {"message": "slow down"}}),
        httpx2.Response(503, headers={"retry-after": "0.05"}, json={"error": {"message": "busy"}}),
    ])
    [result] = fake.generator().generate([GenerationRequest([{"role": "user", "content": "hi"}], seed=1)], settings())
    assert len(fake.bodies) == 3 and result.tokens_out == 500
    gaps = [b - a for a, b in zip(fake.times, fake.times[1:], strict=False)]
    assert gaps[0] >= 0.06 and gaps[1] >= 0.05


def test_an_endpoint_that_stays_down_is_a_synth_error() -> None:
    fake = FakeChatCompletions(failures=[httpx2.Response(500, headers={"retry-after-ms": "1"}, json={})] * 10)
    generator = OpenAIGenerator(http_client=httpx2.Client(transport=httpx2.MockTransport(fake)), max_retries=2)
    with pytest.raises(SynthError, match="still answered 500 after 2 retries"):
        generator.generate([GenerationRequest([{"role": "user", "content": "hi"}], seed=1)], settings())
    assert len(fake.bodies) == 3


def test_a_rejected_key_is_a_synth_error() -> None:
    fake = FakeChatCompletions(failures=[httpx2.Response(401, json={"error": {"message": "bad key"}})])
    with pytest.raises(SynthError, match="rejected the API key"):
        fake.generator().generate([GenerationRequest([{"role": "user", "content": "hi"}], seed=1)], settings())


def test_concurrency_limit_is_respected(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    fake = FakeChatCompletions(delay_s=0.05)
    candidates = plan_candidates(collect_seeds(support_frame), {}, 12, "self-instruct", 2, False, random.Random(0))
    runner = CandidateRunner(fake.generator(), "gpt-4.1-mini", settings(concurrency=3),
                             GenerationCache(tmp_path), "self-instruct")
    outcomes, usage, cap_reached = run_candidates(candidates, runner, 1, 3, SpendCap(), Progress())
    assert len(fake.bodies) == 12 and usage.requests == 12 and not cap_reached
    assert fake.max_in_flight == 3
    assert [o.candidate.number for o in outcomes] == list(range(1, 13))


# --- through the synth stage --------------------------------------------------------------------------------

def test_malformed_replies_become_rejected_rows(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    def reply(body: dict[str, Any], number: int) -> str:
        return {
            0: "Sure! Here is a new example: the user asks about refunds.",
            1: json.dumps({"user": "How do I export my calendar to a spreadsheet?"}),
            2: json.dumps(["not", "an", "object"]),
        }.get(number) or example_reply(body, number)

    fake = FakeChatCompletions(reply=reply)
    config = SynthConfig(n=5, generator="openai", concurrency=1)
    result = synthesize(support_frame, config, context(tmp_path), fake.generator())
    assert result.generated == 5
    assert support_frame.height + 5 == result.kept.height + result.rejected.height
    rejected = result.rejected.sort(F.LINE)
    assert rejected.get_column(F.LINE).to_list() == [1, 2, 3]
    assert rejected.get_column(F.REASON).to_list() == ["unparseable_output"] * 3
    details = rejected.get_column(F.DETAIL).to_list()
    assert details[0].startswith("reply is not JSON")
    assert details[1] == "field 'assistant' is missing (keys: user)"
    assert details[2] == "reply is JSON list, not an object"
    assert rejected.get_column(F.RAW)[0] == "Sure! Here is a new example: the user asks about refunds."
    assert rejected.get_column(F.ORIGIN).unique().to_list() == ["synthetic:openai:gpt-4.1-mini"]
    synthetic = result.kept.filter(pl.col(F.ORIGIN).str.starts_with("synthetic"))
    assert synthetic.get_column(F.LINE).to_list() == [4, 5]
    section = result.sections["synthetic"]
    assert (section["requested"], section["generated"], section["accepted"]) == (5, 5, 2)
    assert section["rejected_by_reason"] == {"unparseable_output": 3}


def test_synthetic_rows_carry_provenance_outside_the_record(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    fake = FakeChatCompletions()
    result = synthesize(support_frame, SynthConfig(n=3, generator="openai", k=2), context(tmp_path), fake.generator())
    synthetic = result.kept.filter(pl.col(F.ORIGIN).str.starts_with("synthetic"))
    assert synthetic.height == 3
    seeds = {row[F.ID]: row[F.LABEL] for row in support_frame.iter_rows(named=True)}
    for row in synthetic.iter_rows(named=True):
        record = orjson.loads(row[F.RECORD])
        assert set(record) == {"messages"}
        assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
        assert record["messages"][0]["content"] == SYSTEM
        meta = row[META]
        assert meta["method"] == "self-instruct" and meta["template_version"] == "2" and len(meta["seed_ids"]) == 2
        assert {seeds[s] for s in meta["seed_ids"]} == {row[F.LABEL]}
        assert row[F.ID] == F.row_id(row[F.RECORD]) and row[F.SOURCE] == "synth"
    # The human rows come through untouched.
    assert result.kept.head(support_frame.height).select(list(F.SCHEMA)).equals(support_frame)


def test_truncated_and_looping_replies_are_rejected(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    fake = FakeChatCompletions(reply=lambda body, n: '{"user": "Why", "assistant": "' + "I can help you. " * 8, finish_reason="length")
    result = synthesize(support_frame, SynthConfig(n=2, generator="openai"), context(tmp_path), fake.generator())
    assert result.rejected.get_column(F.REASON).to_list() == ["degenerate_repetition"] * 2
    fake = FakeChatCompletions(reply=lambda body, n: '{"user": "Why is my invoice', finish_reason="length")
    result = synthesize(support_frame, SynthConfig(n=2, generator="openai"), context(tmp_path / "b"), fake.generator())
    assert result.rejected.get_column(F.REASON).to_list() == ["truncated"] * 2
    assert result.rejected.get_column(F.DETAIL)[0] == "reply hit its 256-token cap before it ended"


def test_spend_cap_stops_generation(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    per_request = chat_cost("gpt-4.1-mini", 1000, 500)
    assert per_request == pytest.approx(0.0012)
    fake = FakeChatCompletions()
    config = SynthConfig(n=20, generator="openai", concurrency=1, max_cost_usd=0.003)
    result = synthesize(support_frame, config, context(tmp_path), fake.generator())
    # After 1 and 2 requests ($0.0012, $0.0024) the cap is not reached; after the 3rd ($0.0036) it is.
    assert len(fake.bodies) == 3 and result.generated == 3
    section = result.sections["synthetic"]
    assert section["spend_cap_reached"] is True
    assert section["cost_usd"] == pytest.approx(0.0036)
    assert (section["tokens_in"], section["tokens_out"]) == (3000, 1500)

    fake = FakeChatCompletions()
    config = SynthConfig(n=20, generator="openai", concurrency=2, max_tokens=4000)
    result = synthesize(support_frame, config, context(tmp_path / "other"), fake.generator())
    # Two in flight: chunk j starts only when chunks up to j-2 used < 4000 tokens; 1500 each.
    assert len(fake.bodies) == 4 and result.sections["synthetic"]["spend_cap_reached"] is True


def test_a_rerun_reads_the_cache_and_yields_the_same_rows(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    fake = FakeChatCompletions()
    config = SynthConfig(n=4, generator="openai")
    first = synthesize(support_frame, config, context(tmp_path), fake.generator())
    assert len(fake.bodies) == 4
    second = synthesize(support_frame, config, context(tmp_path), fake.generator())
    assert len(fake.bodies) == 4  # no request the second time
    assert second.kept.equals(first.kept) and second.sections == first.sections
    larger = synthesize(support_frame, SynthConfig(n=6, generator="openai"), context(tmp_path), fake.generator())
    assert len(fake.bodies) == 6  # the first four candidates are the same prompts: only two new requests
    assert larger.kept.head(first.kept.height).equals(first.kept)


def test_synthetic_copies_of_real_rows_are_dropped_as_duplicates(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    real = orjson.loads(support_frame.get_column(F.RECORD)[0])["messages"]

    def reply(body: dict[str, Any], number: int) -> str:
        if number in (0, 2):  # a verbatim copy of a real row, twice
            return json.dumps({"user": real[1]["content"], "assistant": real[2]["content"]})
        if number == 1:  # a light edit of a real row
            return json.dumps({"user": real[1]["content"].replace("March", "April"), "assistant": real[2]["content"]})
        return example_reply(body, number)

    fake = FakeChatCompletions(reply=reply)
    result = synthesize(support_frame, SynthConfig(n=5, generator="openai", concurrency=1), context(tmp_path),
                        fake.generator())
    rejected = result.rejected.sort(F.LINE)
    assert rejected.get_column(F.LINE).to_list() == [1, 2, 3]
    assert rejected.get_column(F.REASON).to_list() == ["exact_duplicate", "near_duplicate", "exact_duplicate"]
    real_id = support_frame.get_column(F.ID)[0]
    assert rejected.get_column(F.DUPLICATE_OF).to_list()[:2] == [real_id, real_id]
    assert result.kept.filter(pl.col(F.ORIGIN) == "human").height == support_frame.height


def test_share_cap_rejects_the_last_candidates(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    fake = FakeChatCompletions()
    result = synthesize(support_frame, SynthConfig(n=5, generator="openai", max_share=0.25), context(tmp_path),
                        fake.generator())
    # 6 human rows: 2 synthetic rows make 2/8 = 25%.
    assert result.rejected.get_column(F.REASON).to_list() == ["over_synthetic_share"] * 3
    assert result.rejected.get_column(F.LINE).to_list() == [3, 4, 5]


def test_balance_spends_on_the_smaller_label(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    frame = pl.concat([support_frame, support_frame.head(3).with_columns(
        pl.lit("other.jsonl").alias(F.SOURCE), (pl.col(F.LINE) + 10).alias(F.LINE))])  # billing: 6 rows, login: 3
    fake = FakeChatCompletions()
    result = synthesize(frame, SynthConfig(n=3, generator="openai", balance=True), context(tmp_path), fake.generator())
    assert result.stats["accepted_by_label"] == {"login": 3}


# --- end to end: curate with --synth, then review ---------------------------------------------------------

def test_curate_with_synth_then_review_the_synthetic_rows(
    tmp_path: Path, store_dir: Path, support_rows: list[dict[str, Any]], httpx2_mock: Any
) -> None:
    import httpx
    from click.testing import CliRunner
    from factories import write_jsonl

    from ftdata.cli import cli
    from ftdata.pipeline import curate

    fake = FakeChatCompletions(response_cls=httpx.Response)
    httpx2_mock.post("https://api.openai.com/v1/chat/completions").mock(side_effect=fake)
    source = write_jsonl(tmp_path / "support.jsonl", support_rows)
    steps = [("exact_dedup", {}), ("near_dedup", {}), ("synth", {"n": 6, "generator": "openai", "k": 2})]
    result = curate([source], steps, dataset="support", store=store_dir, cache_dir=tmp_path / "cache")
    manifest = result.manifest
    section = manifest["synthetic"]
    assert (section["generator"], section["model"], section["requested"], section["generated"]) == ("openai", "gpt-4.1-mini", 6, 6)
    human = manifest["stages"][[s["name"] for s in manifest["stages"]].index("synth")]["rows_in"]
    kept = sum(s["rows"] for s in manifest["splits"].values())
    assert kept == human + section["accepted"]
    assert sum(s["synthetic"] for s in manifest["splits"].values()) == section["accepted"] == 6
    index = [e for e in result.version.iter_rows_index() if e["origin"] != "human"]
    assert len(index) == 6 and all(e["origin"] == "synthetic:openai:gpt-4.1-mini" for e in index)
    assert all(len(e["synth_meta"]["seed_ids"]) == 2 for e in index)

    # The same recipe again: same version, and no request reaches the endpoint.
    again = curate([source], steps, dataset="support", store=store_dir, cache_dir=tmp_path / "cache")
    assert again.version == result.version and len(fake.bodies) == 6

    sheet = tmp_path / "sheet.csv"
    runner = CliRunner()
    exported = runner.invoke(cli, ["review", result.version.ref, "-o", str(sheet), "--store", str(store_dir)], obj={})
    assert exported.exit_code == 0, exported.output
    lines = sheet.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7 and lines[0] == "dataset,version,row_id,split,origin,seed_ids,label,user,assistant,accept"
    assert lines[1].endswith(",") and "synthetic:openai:gpt-4.1-mini" in lines[1]
    marked = [lines[0], lines[1] + "no", *lines[2:]]
    sheet.write_text("\n".join(marked) + "\n", encoding="utf-8")
    reviewed = runner.invoke(cli, ["curate", "--review-file", str(sheet), "--store", str(store_dir), "--json"], obj={})
    assert reviewed.exit_code == 0, reviewed.output
    child = json.loads(reviewed.stdout)
    assert child["totals"]["rejected_by_reason"] == {"review.rejected_in_review": 1}
    assert sum(s["synthetic"] for s in child["splits"].values()) == 5


def test_paraphrases_keep_the_seed_answer_and_join_its_cluster(tmp_path: Path, support_frame: pl.DataFrame) -> None:
    def reply(body: dict[str, Any], number: int) -> str:
        prompt = body["messages"][-1]["content"]
        seed_question = prompt.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
        if number == 0:  # barely reworded: a near duplicate of the seed's question
            return json.dumps({"user": seed_question.replace("?", " please?")})
        return json.dumps({"user": unique_text(body["seed"]) + "?"})

    fake = FakeChatCompletions(reply=reply)
    config = SynthConfig(n=3, generator="openai", method="paraphrase", concurrency=1)
    result = synthesize(support_frame, config, context(tmp_path), fake.generator())
    assert result.rejected.get_column(F.REASON).to_list() == ["near_duplicate"]
    paraphrases = result.kept.filter(pl.col(F.ORIGIN).str.starts_with("synthetic"))
    assert paraphrases.height == 2
    humans = {row[F.ID]: row for row in result.kept.filter(pl.col(F.ORIGIN) == "human").iter_rows(named=True)}
    for row in paraphrases.iter_rows(named=True):
        [seed_id] = row[META]["seed_ids"]
        seed = humans[seed_id]
        seed_messages = orjson.loads(seed[F.RECORD])["messages"]
        messages = orjson.loads(row[F.RECORD])["messages"]
        assert messages[2] == seed_messages[2] and messages[1] != seed_messages[1]
        assert row[F.CLUSTER] == seed[F.CLUSTER] == f"paraphrase-{seed_id[:16]}"
    # Only the seeds of accepted paraphrases joined a cluster.
    assert sum(1 for row in humans.values() if row[F.CLUSTER] is not None) == 2
