"""Content-addressed uploads: the sha256 of a file's exact bytes maps to the file id the API gave it.

The map lives at `<store>/runs/.cache/openai-files.json`, keyed by base URL then sha256 (file ids are
per account and endpoint). A cached id is re-checked with `files.retrieve` before it is reused, so a file
deleted on the server is uploaded again, and an unchanged file is never uploaded twice. Files above
`PARTS_THRESHOLD` go through the Uploads API in parts.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from ftdata.runs import now, runs_dir
from ftdata.store import Store, dump_json

from ftdata_openai.api_limits import PART_SIZE, PARTS_THRESHOLD
from ftdata_openai.errors import TrainerError, api_error_text

if TYPE_CHECKING:
    import openai

CACHE_PATH = Path(".cache") / "openai-files.json"  # a subdirectory: `ftdata runs` reads only runs/*.json
MIME_TYPE = "text/jsonl"
PURPOSE = "fine-tune"
# File statuses meaning "not ready yet"; `status` is deprecated and some compatible APIs omit it, so
# anything else that is not "error" counts as ready.
PENDING_FILE_STATUSES = frozenset({"uploaded", "pending", "running", "validating"})
LINE_REFERENCE = re.compile(r"\b(?:line|example|row)\s*#?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class UploadedFile:
    split: str
    file_id: str
    sha256: str
    bytes: int
    reused: bool
    processed: bool  # the API already finished processing it (a reused file, usually)

    def to_record(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "sha256": self.sha256, "bytes": self.bytes, "reused": self.reused}


class FileCache:
    def __init__(self, store: Store) -> None:
        self.path = runs_dir(store) / CACHE_PATH

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        if not self.path.exists():
            return {}
        try:
            return orjson.loads(self.path.read_bytes()).get("files", {})
        except orjson.JSONDecodeError:
            return {}  # a damaged cache only costs a re-upload

    def _save(self, files: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        tmp.write_bytes(dump_json({"schema_version": 1, "files": files}))
        os.replace(tmp, self.path)

    def get(self, base_url: str, sha256: str) -> str | None:
        entry = self._load().get(base_url, {}).get(sha256)
        return entry["file_id"] if entry else None

    def put(self, base_url: str, sha256: str, file_id: str, size: int, filename: str) -> None:
        files = self._load()
        files.setdefault(base_url, {})[sha256] = {
            "file_id": file_id, "bytes": size, "filename": filename, "uploaded_at": now()
        }
        self._save(files)

    def forget(self, base_url: str, sha256: str) -> None:
        files = self._load()
        if files.get(base_url, {}).pop(sha256, None) is not None:
            self._save(files)


def sha256_and_md5(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def named_line(message: str, path: Path) -> tuple[str, str] | None:
    """(`path:N`, the start of line N) when an API message names a line or example N, else None.

    The API says "Line N" for upload errors and "Example N" for job validation errors; both are read as
    1-based line numbers of the file that was uploaded.
    """
    match = LINE_REFERENCE.search(message)
    if not match:
        return None
    number = int(match.group(1))
    excerpt = ""
    with path.open("rb") as fh:
        for index, line in enumerate(fh, start=1):
            if index == number:
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                excerpt = f"\n  {number} | {text[:160]}{'…' if len(text) > 160 else ''}"
                break
    return f"{path}:{number}", excerpt


def locate_line(message: str, path: Path) -> str:
    """An API message about a file, prefixed `path:line:` with that line's start shown when it names one."""
    found = named_line(message, path)
    if found is None:
        return f"{path}: {message}"
    location, excerpt = found
    return f"{location}: {message}{excerpt}"


def _remote_status(client: openai.OpenAI, file_id: str, size: int) -> str | None:
    """The cached file's status when it can be reused (same size, fine-tune purpose), else None."""
    import openai

    try:
        remote = client.files.retrieve(file_id)
    except openai.NotFoundError:
        return None
    if remote.status == "error" or remote.bytes != size or remote.purpose != PURPOSE:
        return None
    return str(remote.status)


def _upload_in_parts(client: openai.OpenAI, path: Path, filename: str, size: int, md5: str, part_size: int) -> str:
    upload = client.uploads.create(bytes=size, filename=filename, mime_type=MIME_TYPE, purpose=PURPOSE)
    part_ids: list[str] = []
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(part_size), b""):
                part_ids.append(client.uploads.parts.create(upload_id=upload.id, data=chunk).id)
        completed = client.uploads.complete(upload_id=upload.id, part_ids=part_ids, md5=md5)
    except Exception:
        # An unfinished Upload would linger for an hour; cancelling is best effort, the real error wins.
        try:
            client.uploads.cancel(upload.id)
        except Exception:  # noqa: BLE001
            pass
        raise
    if completed.file is None:
        raise TrainerError(f"{path}: the Uploads API completed upload {upload.id} without a file")
    return completed.file.id


def ensure_uploaded(
    client: openai.OpenAI,
    cache: FileCache,
    base_url: str,
    split: str,
    path: Path,
    expected_sha256: str,
    filename: str,
    parts_threshold: int = PARTS_THRESHOLD,
    part_size: int = PART_SIZE,
    log: Callable[[str], None] = lambda _: None,
) -> UploadedFile:
    import openai

    size = path.stat().st_size
    sha256, md5 = sha256_and_md5(path)
    if sha256 != expected_sha256:
        raise TrainerError(
            f"{path}: sha256 {sha256[:12]}… differs from the manifest's {expected_sha256[:12]}…; "
            "the version was changed after it was written (run `ftdata verify`)"
        )
    cached = cache.get(base_url, sha256)
    if cached is not None:
        status = _remote_status(client, cached, size)
        if status is not None:
            log(f"{split}: reusing {cached} (same sha256 {sha256[:12]}…)")
            return UploadedFile(split, cached, sha256, size, reused=True,
                                processed=status not in PENDING_FILE_STATUSES)
        cache.forget(base_url, sha256)
    log(f"{split}: uploading {path.name} ({size:,} bytes{', in parts' if size > parts_threshold else ''})")
    try:
        if size > parts_threshold:
            file_id = _upload_in_parts(client, path, filename, size, md5, part_size)
        else:
            with path.open("rb") as fh:
                file_id = client.files.create(file=(filename, fh, MIME_TYPE), purpose=PURPOSE).id
    except openai.BadRequestError as exc:
        raise TrainerError(
            f"the API rejected the {split} file: {locate_line(api_error_text(exc.body, exc.message), path)}"
        ) from None
    cache.put(base_url, sha256, file_id, size, filename)
    return UploadedFile(split, file_id, sha256, size, reused=False, processed=False)


def wait_until_processed(
    client: openai.OpenAI,
    cache: FileCache,
    base_url: str,
    uploaded: UploadedFile,
    path: Path,
    sleep: Callable[[float], None],
    max_wait_s: float,
    interval_s: float = 1.0,
) -> None:
    """Poll the file until the API has processed it; a processing error names the line when it can."""
    waited = 0.0
    while True:
        remote = client.files.retrieve(uploaded.file_id)
        if remote.status == "error":
            cache.forget(base_url, uploaded.sha256)
            details = remote.status_details or "no details given"
            raise TrainerError(
                f"the API rejected the {uploaded.split} file {uploaded.file_id}: {locate_line(details, path)}"
            )
        if remote.status not in PENDING_FILE_STATUSES:
            return
        if waited >= max_wait_s:
            raise TrainerError(
                f"{uploaded.split} file {uploaded.file_id} is still {remote.status!r} after {waited:.0f} s; "
                "run the same command again later (the upload is reused)"
            )
        sleep(interval_s)
        waited += interval_s
        interval_s = min(interval_s * 2, 30.0)
