"""Fine-tuning jobs: the create request, watching (status, events, metrics), the final record, cancel.

Job statuses are treated as an open string: the SDK lists six, the service also reports `paused`, and an
unknown status is shown and polled like any non-terminal one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftdata.runs import now

from ftdata_openai.api_limits import METADATA_KEY_MAX, METADATA_MAX_KEYS, METADATA_VALUE_MAX
from ftdata_openai.errors import TrainerError

if TYPE_CHECKING:
    import openai

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
EVENTS_PAGE = 50
# A job watched for the first time after days of running can hold thousands of events: show the newest.
MAX_EVENT_PAGES_PER_POLL = 20


def job_metadata(values: dict[str, str]) -> dict[str, str]:
    """Check the API's metadata limits before the request, with a message that names the key."""
    if len(values) > METADATA_MAX_KEYS:
        raise TrainerError(f"job metadata has {len(values)} keys; the API allows {METADATA_MAX_KEYS}")
    for key, value in values.items():
        if len(key) > METADATA_KEY_MAX:
            raise TrainerError(f"job metadata key {key!r} is longer than {METADATA_KEY_MAX} characters")
        if len(value) > METADATA_VALUE_MAX:
            raise TrainerError(f"job metadata {key}={value[:40]!r}… is longer than {METADATA_VALUE_MAX} characters")
    return values


def set_status(record: dict[str, Any], status: str) -> bool:
    """Record a status change with its time; True when it changed."""
    if record.get("status") == status:
        return False
    record["status"] = status
    record.setdefault("statuses", []).append({"status": status, "at": now()})
    return True


def _plain(obj: Any) -> Any:
    """SDK models → plain JSON data, dropping unset (None) fields."""
    return obj.model_dump(exclude_none=True) if hasattr(obj, "model_dump") else obj


@dataclass
class EventCursor:
    """New events since the last fetch, oldest first. The API pages newest first."""

    last_id: str | None = None

    def fetch(self, client: openai.OpenAI, job_id: str) -> list[Any]:
        fresh: list[Any] = []
        after: str | None = None
        for _ in range(MAX_EVENT_PAGES_PER_POLL):
            kwargs: dict[str, Any] = {"limit": EVENTS_PAGE}
            if after is not None:
                kwargs["after"] = after
            page = client.fine_tuning.jobs.list_events(job_id, **kwargs)
            reached_seen = False
            for event in page.data:
                if event.id == self.last_id:
                    reached_seen = True
                    break
                fresh.append(event)
            if reached_seen or not page.data or not page.has_more:
                break
            after = page.data[-1].id
        if fresh:
            self.last_id = fresh[0].id
        fresh.reverse()
        return fresh


def progress_line(metrics: dict[str, Any]) -> str:
    step, total = metrics.get("step"), metrics.get("total_steps")
    parts = [f"step {step}/{total}" if total else f"step {step}"]
    for name in ("train_loss", "valid_loss", "train_mean_token_accuracy", "full_valid_loss"):
        value = metrics.get(name)
        if isinstance(value, int | float):
            parts.append(f"{name} {value:.4f}")
    return " · ".join(parts)


def resolved_hyperparameters(job: Any) -> dict[str, Any]:
    method = getattr(job, "method", None)
    if method is not None and method.type:
        detail = getattr(method, method.type, None)
        if detail is not None and detail.hyperparameters is not None:
            return _plain(detail.hyperparameters)
    return _plain(job.hyperparameters) if getattr(job, "hyperparameters", None) is not None else {}


def record_job(record: dict[str, Any], job: Any) -> bool:
    """Copy what the job object says into the record; True when the status changed."""
    record["job_id"] = job.id
    changed = set_status(record, str(job.status))
    if job.estimated_finish:
        record["estimated_finish"] = job.estimated_finish
    return changed


def record_outcome(client: openai.OpenAI, record: dict[str, Any], job: Any) -> None:
    """On a terminal status: the model, tokens, checkpoints with metrics, result files, or the error."""
    record["finished_at"] = job.finished_at
    record["hyperparameters_resolved"] = resolved_hyperparameters(job)
    if job.status == "succeeded":
        record["fine_tuned_model"] = job.fine_tuned_model
        record["trained_tokens"] = job.trained_tokens
        record["result_files"] = list(job.result_files or [])
        checkpoints = [
            {
                "id": checkpoint.id,
                "step": checkpoint.step_number,
                "model": checkpoint.fine_tuned_model_checkpoint,
                "metrics": _plain(checkpoint.metrics),
            }
            for checkpoint in client.fine_tuning.jobs.checkpoints.list(job.id, limit=EVENTS_PAGE)
        ]
        record["checkpoints"] = sorted(checkpoints, key=lambda c: c["step"])
    elif job.error is not None and job.error.code:
        record["error"] = _plain(job.error)


def outcome_message(record: dict[str, Any]) -> str | None:
    """A plain message when the job ended without a model (the command then exits 1)."""
    status = record.get("status")
    if status == "failed":
        error = record.get("error") or {}
        code = error.get("code") or "unknown_error"
        where = f" (param {error['param']})" if error.get("param") else ""
        return f"job {record['job_id']} failed: {code}: {error.get('message', 'no message given')}{where}"
    if status == "cancelled":
        return f"job {record['job_id']} was cancelled; no model was made"
    return None


@dataclass
class Poller:
    """Backoff between polls: back to the first interval whenever something new happened."""

    sleep: Callable[[float], None]
    initial_s: float
    max_s: float

    def __post_init__(self) -> None:
        self.interval_s = self.initial_s

    def wait(self, something_new: bool) -> None:
        self.interval_s = self.initial_s if something_new else min(self.interval_s * 1.5, self.max_s)
        self.sleep(self.interval_s)


def watch_job(
    client: openai.OpenAI,
    record: dict[str, Any],
    poller: Poller,
    save: Callable[[dict[str, Any]], None],
    show: Callable[[str], None],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Poll the job until a terminal status; stream new events (metrics go to `progress`); keep the
    record saved as it changes."""
    job_id = record["job_id"]
    cursor = EventCursor(record.get("last_event_id"))
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        changed = record_job(record, job)
        if changed:
            show(f"status: {job.status}")
        events = cursor.fetch(client, job_id)
        for event in events:
            if event.type == "metrics" and isinstance(event.data, dict):
                record["metrics"] = dict(event.data)
                progress(progress_line(event.data))
            else:
                show(f"[{event.level}] {event.message}")
        if events:
            record["last_event_id"] = cursor.last_id
        if job.status in TERMINAL_STATUSES:
            record_outcome(client, record, job)
            save(record)
            return record
        if changed or events:
            save(record)
        poller.wait(something_new=changed or bool(events))
