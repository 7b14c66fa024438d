"""A stateful fake of the OpenAI fine-tuning API at the HTTP level (an `httpx2.MockTransport` handler).

It behaves like the service where the plugin depends on it: files go `uploaded` → `processed` (or
`error`, naming a line) over successive retrieves; the Uploads API takes parts and checks bytes and md5
on completion; jobs go through a scripted list of statuses, one step per retrieve, producing message and
metrics events (listed newest first, paged with `after`) and checkpoints; 429 answers carry
`retry-after`; bad keys get 401; unknown models and unprocessed files get 400. Every request is recorded
so tests can assert what the plugin sent. Routes match on the path after the API prefix, so the same fake
serves `/v1/...` (OpenAI) and `/openai/...` (Azure).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx2
import orjson

FINE_TUNABLE = ("gpt-4.1-mini-2025-04-14", "gpt-4.1-2025-04-14", "gpt-4o-mini-2024-07-18")
CREATED = 1_790_000_000  # a fixed clock keeps responses deterministic


@dataclass
class Sent:
    method: str
    path: str  # after the API prefix, e.g. "/files"
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, bytes] = field(default_factory=dict)


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    boundary = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    assert boundary, content_type
    fields: dict[str, bytes] = {}
    for part in body.split(b"--" + boundary.group(1).encode())[1:-1]:
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        assert name, head
        fields[name.group(1).decode()] = data.removesuffix(b"\r\n")
        filename = re.search(rb'filename="([^"]*)"', head)
        if filename:
            fields[f"{name.group(1).decode()}.filename"] = filename.group(1)
    return fields


def error(status: int, message: str, code: str | None = None, param: str | None = None,
          headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return httpx2.Response(status, json=body, headers=headers)


class FakeOpenAI:
    def __init__(self, api_key: str, prefix: str = "/v1") -> None:
        self.api_key = api_key
        self.prefix = prefix
        self.sent: list[Sent] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._ids = 0
        # Behaviour knobs, set by tests.
        self.processing_polls = 1  # retrieves that still answer "uploaded" before "processed"
        self.processing_error: str | None = None  # processing ends in "error" with these status_details
        self.reject_upload: str | None = None  # files.create answers 400 with this message
        self.rate_limited = 0  # the next N requests answer 429
        self.job_script = ["validating_files", "queued", "running", "running", "succeeded"]
        self.job_error = {"code": "invalid_training_file", "message": "Line 3: too few assistant messages",
                          "param": "training_file"}
        self.steps_per_poll = 2
        self.total_steps = 6
        self.canned: dict[tuple[str, str], list[httpx2.Response]] = {}  # answers given once, in order

    def respond_once(self, method: str, path: str, response: httpx2.Response) -> None:
        self.canned.setdefault((method, path), []).append(response)

    # -- plumbing -----------------------------------------------------------------------------------

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:04d}"

    def calls(self, method: str, pattern: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and re.fullmatch(pattern, s.path)]

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        assert path.startswith(self.prefix), path
        path = path[len(self.prefix):]
        body = request.read()
        content_type = request.headers.get("content-type", "")
        sent = Sent(
            method=request.method,
            path=path,
            query={k: v[-1] for k, v in parse_qs(request.url.query.decode() if isinstance(request.url.query, bytes)
                                                  else str(request.url.query)).items()},
            headers=dict(request.headers),
        )
        if content_type.startswith("multipart/form-data"):
            sent.form = parse_multipart(content_type, body)
        elif body:
            sent.json = orjson.loads(body)
        self.sent.append(sent)
        given = request.headers.get("authorization", "").removeprefix("Bearer ") or request.headers.get("api-key")
        if given != self.api_key:
            return error(401, "Incorrect API key provided: sk-wr*****ng.", code="invalid_api_key")
        canned = self.canned.get((sent.method, sent.path))
        if canned:
            return canned.pop(0)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return error(429, "Rate limit reached for requests", code="rate_limit_exceeded",
                         headers={"retry-after": "0.01"})
        return self.route(sent)

    def route(self, sent: Sent) -> httpx2.Response:
        routes = [
            ("POST", r"/files", self.create_file),
            ("GET", r"/files/(?P<id>[^/]+)", self.retrieve_file),
            ("POST", r"/uploads", self.create_upload),
            ("POST", r"/uploads/(?P<id>[^/]+)/parts", self.add_part),
            ("POST", r"/uploads/(?P<id>[^/]+)/complete", self.complete_upload),
            ("POST", r"/uploads/(?P<id>[^/]+)/cancel", self.cancel_upload),
            ("POST", r"/fine_tuning/jobs", self.create_job),
            ("GET", r"/fine_tuning/jobs/(?P<id>[^/]+)", self.retrieve_job),
            ("GET", r"/fine_tuning/jobs/(?P<id>[^/]+)/events", self.list_events),
            ("GET", r"/fine_tuning/jobs/(?P<id>[^/]+)/checkpoints", self.list_checkpoints),
            ("POST", r"/fine_tuning/jobs/(?P<id>[^/]+)/cancel", self.cancel_job),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, sent.path)
            if method == sent.method and match:
                return handler(sent, **match.groupdict())
        return error(404, f"Invalid URL ({sent.method} {sent.path})")

    # -- files --------------------------------------------------------------------------------------

    def _new_file(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        file = {
            "id": self._id("file"), "object": "file", "bytes": len(content), "created_at": CREATED,
            "filename": filename, "purpose": purpose, "status": "uploaded", "status_details": None,
            "_content": content, "_polls": self.processing_polls,
        }
        self.files[file["id"]] = file
        return file

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def create_file(self, sent: Sent) -> httpx2.Response:
        if self.reject_upload:
            return error(400, self.reject_upload, code="invalid_file_format", param="file")
        file = self._new_file(sent.form["file.filename"].decode(), sent.form["purpose"].decode(), sent.form["file"])
        return httpx2.Response(200, json=self._public(file))

    def retrieve_file(self, sent: Sent, id: str) -> httpx2.Response:
        file = self.files.get(id)
        if file is None:
            return error(404, f"No such File object: {id}", param="id")
        if file["status"] == "uploaded":
            if file["_polls"] > 0:
                file["_polls"] -= 1
            elif self.processing_error:
                file["status"], file["status_details"] = "error", self.processing_error
            else:
                file["status"] = "processed"
        return httpx2.Response(200, json=self._public(file))

    # -- uploads ------------------------------------------------------------------------------------

    def create_upload(self, sent: Sent) -> httpx2.Response:
        upload = {"id": self._id("upload"), "object": "upload", "status": "pending", "created_at": CREATED,
                  "expires_at": CREATED + 3600, "file": None, "_parts": {}, **sent.json}
        self.uploads[upload["id"]] = upload
        return httpx2.Response(200, json=self._public(upload))

    def add_part(self, sent: Sent, id: str) -> httpx2.Response:
        part = {"id": self._id("part"), "object": "upload.part", "created_at": CREATED, "upload_id": id}
        self.uploads[id]["_parts"][part["id"]] = sent.form["data"]
        return httpx2.Response(200, json=part)

    def complete_upload(self, sent: Sent, id: str) -> httpx2.Response:
        upload = self.uploads[id]
        content = b"".join(upload["_parts"][part] for part in sent.json["part_ids"])
        if len(content) != upload["bytes"]:
            return error(400, f"Upload has {len(content)} bytes, expected {upload['bytes']}")
        if sent.json.get("md5") and sent.json["md5"] != hashlib.md5(content).hexdigest():
            return error(400, "md5 checksum does not match the uploaded parts")
        upload["status"] = "completed"
        upload["file"] = self._public(self._new_file(upload["filename"], upload["purpose"], content))
        return httpx2.Response(200, json=self._public(upload))

    def cancel_upload(self, sent: Sent, id: str) -> httpx2.Response:
        self.uploads[id]["status"] = "cancelled"
        return httpx2.Response(200, json=self._public(self.uploads[id]))

    # -- jobs ---------------------------------------------------------------------------------------

    def create_job(self, sent: Sent) -> httpx2.Response:
        body = sent.json
        if body["model"] not in FINE_TUNABLE:
            return error(400, f"Model {body['model']} is not available for fine-tuning or does not exist.",
                         code="model_not_available", param="model")
        for key in ("training_file", "validation_file"):
            file = self.files.get(body.get(key)) if body.get(key) else None
            if body.get(key) and (file is None or file["status"] != "processed"):
                return error(400, f"File {body[key]} is not ready", code="file_not_ready", param=key)
        job = {
            "id": self._id("ftjob"), "object": "fine_tuning.job", "created_at": CREATED, "model": body["model"],
            "organization_id": "org-fake", "status": self.job_script[0], "training_file": body["training_file"],
            "validation_file": body.get("validation_file"), "seed": body.get("seed", 1234),
            "result_files": [], "fine_tuned_model": None, "finished_at": None, "trained_tokens": None,
            "error": None, "estimated_finish": None, "metadata": body.get("metadata"),
            "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "method": body.get("method"), "_suffix": body.get("suffix"), "_position": 0, "_events": [],
            "_checkpoints": [], "_step": 0,
        }
        self._event(job, "info", f"Validating training file: {body['training_file']}")
        self.jobs[job["id"]] = job
        return httpx2.Response(200, json=self._public(job))

    def _event(self, job: dict[str, Any], level: str, message: str, data: Any = None, kind: str = "message") -> None:
        job["_events"].append({"id": self._id("ftevent"), "object": "fine_tuning.job.event", "level": level,
                               "message": message, "created_at": CREATED + len(job["_events"]),
                               "data": data, "type": kind})

    def _advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        job["_position"] = min(job["_position"] + 1, len(self.job_script) - 1)
        status = self.job_script[job["_position"]]
        if status != job["status"]:
            job["status"] = status
            self._event(job, "info", f"Job {status}")
        if status == "running":
            self._train(job, self.steps_per_poll)
        if status == "succeeded":
            self._train(job, self.total_steps)
            self._finish(job)
        if status == "failed":
            job["error"] = dict(self.job_error)
            job["finished_at"] = CREATED + 900
            self._event(job, "error", f"Job failed: {self.job_error['message']}")

    def _train(self, job: dict[str, Any], steps: int) -> None:
        for _ in range(min(steps, self.total_steps - job["_step"])):
            job["_step"] += 1
            step = job["_step"]
            data = {"step": step, "total_steps": self.total_steps, "train_loss": 2.0 / step,
                    "train_mean_token_accuracy": 0.5 + step / 100}
            self._event(job, "info", f"Step {step}/{self.total_steps}: training loss={2.0 / step:.3f}", data, "metrics")

    def _finish(self, job: dict[str, Any]) -> None:
        suffix = job["_suffix"] or "none"
        job["fine_tuned_model"] = f"ft:{job['model']}:org-fake:{suffix}:AbC123"
        job["trained_tokens"] = 4321
        job["finished_at"] = CREATED + 900
        job["hyperparameters"] = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}
        if job["method"]:
            method = job["method"]["type"]
            job["method"] = {"type": method, method: {"hyperparameters": {
                "n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}}}
        result = self._new_file("step_metrics.csv", "fine-tune-results", b"step,train_loss\n")
        result["status"] = "processed"
        job["result_files"] = [result["id"]]
        for step in (2, 4, 6):
            job["_checkpoints"].append({
                "id": self._id("ftckpt"), "object": "fine_tuning.job.checkpoint", "created_at": CREATED + step,
                "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{step}",
                "fine_tuning_job_id": job["id"], "step_number": step,
                "metrics": {"step": float(step), "train_loss": 2.0 / step, "valid_loss": 2.5 / step},
            })
        self._event(job, "info", "The job has successfully completed")

    def retrieve_job(self, sent: Sent, id: str) -> httpx2.Response:
        if id not in self.jobs:
            return error(404, f"Could not find fine-tune: {id}", param="fine_tune_id")
        self._advance(self.jobs[id])
        return httpx2.Response(200, json=self._public(self.jobs[id]))

    @staticmethod
    def _page(items_newest_first: list[dict[str, Any]], query: dict[str, str]) -> httpx2.Response:
        limit = int(query.get("limit", 20))
        start = 0
        if "after" in query:
            ids = [item["id"] for item in items_newest_first]
            start = ids.index(query["after"]) + 1
        page = items_newest_first[start:start + limit]
        return httpx2.Response(200, json={"object": "list", "data": page,
                                          "has_more": start + limit < len(items_newest_first)})

    def list_events(self, sent: Sent, id: str) -> httpx2.Response:
        return self._page(list(reversed(self.jobs[id]["_events"])), sent.query)

    def list_checkpoints(self, sent: Sent, id: str) -> httpx2.Response:
        return self._page(list(reversed(self.jobs[id]["_checkpoints"])), sent.query)

    def cancel_job(self, sent: Sent, id: str) -> httpx2.Response:
        job = self.jobs[id]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return error(400, f"Job {id} has already completed", code="invalid_state")
        job["status"] = "cancelled"
        job["finished_at"] = CREATED + 600
        self._event(job, "info", "Fine-tuning job cancelled")
        return httpx2.Response(200, json=self._public(job))
