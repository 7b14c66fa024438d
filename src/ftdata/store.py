"""The versioned store: immutable, content-addressed dataset versions with a manifest.

    <store>/<dataset>/<version>/
        train.jsonl  validation.jsonl  [test.jsonl]   one training example per line (what trainers read)
        rejected.jsonl                                 every rejected row: source, line, stage, reason, content
        rows.jsonl                                     per-row index: id, split, source, line, origin, label,
                                                       group, cluster, tokens
        manifest.json

A version directory is written to a temporary sibling and renamed into place, so a crash never leaves a
half version. Trainers read only the manifest and the files it lists (`Version`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REJECTED = "rejected.jsonl"
ROWS = "rows.jsonl"
RUNS_DIR = "runs"  # run records live beside the datasets: <store>/runs/<run-id>.json
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StoreError(Exception):
    """A store problem a user can act on (unknown dataset/version, bad name, corrupt manifest)."""


def default_store() -> Path:
    return Path(os.environ.get("FTDATA_STORE") or "datasets")


def check_dataset_name(name: str) -> str:
    if not DATASET_NAME.match(name) or name == RUNS_DIR:
        raise StoreError(
            f"invalid dataset name {name!r}: use letters, digits, '_', '.', '-' (and not {RUNS_DIR!r})"
        )
    return name


def dump_json(obj: Any) -> bytes:
    """Stable serialisation for manifests and run records: sorted keys, indented, trailing newline."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path, rows: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if rows is not None:
        entry["rows"] = rows
    return entry


def parse_ref(ref: str) -> tuple[str, str]:
    """`support@3f2a…` / `support@latest` / `support` → (dataset, version-or-"latest")."""
    dataset, _, version = ref.partition("@")
    return dataset, version or "latest"


@dataclass(frozen=True)
class Version:
    store: Path
    dataset: str
    version: str

    @property
    def path(self) -> Path:
        return self.store / self.dataset / self.version

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    @property
    def manifest(self) -> dict[str, Any]:
        try:
            return orjson.loads((self.path / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StoreError(f"{self.path / MANIFEST}: cannot read manifest: {exc}") from exc

    @property
    def splits(self) -> dict[str, dict[str, Any]]:
        return self.manifest["splits"]

    def split_path(self, split: str) -> Path:
        splits = self.splits
        if split not in splits:
            raise StoreError(f"{self.ref} has no split {split!r} (has: {', '.join(splits)})")
        return self.path / splits[split]["path"]

    def read_split(self, split: str) -> list[dict[str, Any]]:
        with self.split_path(split).open("rb") as fh:
            return [orjson.loads(line) for line in fh if line.strip()]

    def iter_rows_index(self) -> Iterator[dict[str, Any]]:
        with (self.path / ROWS).open("rb") as fh:
            for line in fh:
                yield orjson.loads(line)

    def verify(self) -> list[str]:
        """Re-hash every file the manifest lists; return problems (empty = intact)."""
        problems = []
        manifest = self.manifest
        entries = list(manifest.get("splits", {}).values()) + list(manifest.get("files", {}).values())
        listed = {MANIFEST}
        for entry in entries:
            path = self.path / entry["path"]
            listed.add(entry["path"])
            if not path.exists():
                problems.append(f"{path}: missing")
                continue
            size = path.stat().st_size
            digest = sha256_file(path)
            if digest != entry["sha256"] or size != entry["bytes"]:
                problems.append(
                    f"{path}: sha256 {digest[:12]}… ({size} bytes) does not match the manifest's "
                    f"{entry['sha256'][:12]}… ({entry['bytes']} bytes)"
                )
        for extra in sorted(p.name for p in self.path.iterdir() if p.name not in listed):
            problems.append(f"{self.path / extra}: not listed in the manifest")
        return problems


class Store:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_store()

    def datasets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and p.name != RUNS_DIR and not p.name.startswith(".")
        )

    def versions(self, dataset: str) -> list[Version]:
        """Versions of a dataset, oldest first (by manifest created_at, then id)."""
        base = self.root / dataset
        if not base.is_dir():
            known = ", ".join(self.datasets()) or "none"
            raise StoreError(f"no dataset {dataset!r} in {self.root} (datasets: {known})")
        found = [
            Version(self.root, dataset, p.name)
            for p in base.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).exists()
        ]
        return sorted(found, key=lambda v: (v.manifest.get("created_at", ""), v.version))

    def resolve(self, ref: str) -> Version:
        dataset, version = parse_ref(ref)
        versions = self.versions(dataset)
        if not versions:
            raise StoreError(f"dataset {dataset!r} has no versions in {self.root}")
        if version == "latest":
            return versions[-1]
        matches = [v for v in versions if v.version.startswith(version)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise StoreError(f"no version {version!r} of {dataset!r} (versions: {', '.join(v.version for v in versions)})")
        raise StoreError(f"version prefix {version!r} is ambiguous: {', '.join(v.version for v in matches)}")

    def tmp_dir(self, dataset: str, version: str) -> Path:
        base = self.root / check_dataset_name(dataset)
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".tmp-{version}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        return tmp

    def commit(self, tmp: Path, dataset: str, version: str) -> Version:
        """Rename a fully written temporary directory into place (atomic on one filesystem)."""
        final = self.root / dataset / version
        try:
            os.rename(tmp, final)
        except OSError:
            # Another run wrote the same content-addressed version first: identical by construction.
            shutil.rmtree(tmp, ignore_errors=True)
            if not (final / MANIFEST).exists():
                raise
        return Version(self.root, dataset, version)

    def exists(self, dataset: str, version: str) -> bool:
        return (self.root / dataset / version / MANIFEST).exists()
