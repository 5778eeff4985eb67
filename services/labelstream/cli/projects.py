"""Project files (YAML) and item files (JSONL or CSV)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from labelstream.common.projects import resolve
from labelstream.v1 import events_pb2

# Every ProjectSpec field (the proto is the one declaration), and `extends` (read_project_doc).
PROJECT_KEYS = {field.name for field in events_pb2.ProjectSpec.DESCRIPTOR.fields} - {"schema_version"}
ITEM_KEYS = {"item_id", "text", "prompt", "responses", "gold_label", "metadata"}


class InputFileError(ValueError):
    """A project or item file is malformed; the message says where and how."""


def read_project_doc(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A project file's mapping. `extends: other.yaml` (relative to the file) starts from that
    file's mapping: this file's keys replace the base's, and its `workers` keys the base's workers'."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputFileError(f"{path}: cannot read project YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputFileError(f"{path}: a project file is a YAML mapping of {sorted(PROJECT_KEYS)}")
    base_name = doc.pop("extends", None)
    if base_name is None:
        return doc
    base_path = (path.parent / str(base_name)).resolve()
    if base_path in seen or base_path == path.resolve():
        raise InputFileError(f"{path}: extends {base_name!r}, which extends it back: remove the cycle")
    base = read_project_doc(base_path, (*seen, path.resolve()))
    workers = {**(base.get("workers") or {}), **(doc.get("workers") or {})}
    merged = {**base, **doc}
    if workers:
        merged["workers"] = workers
    return merged


def load_project(path: Path) -> events_pb2.ProjectSpec:
    doc = read_project_doc(path)
    unknown = set(doc) - PROJECT_KEYS
    if unknown:
        raise InputFileError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(PROJECT_KEYS)}")
    examples = doc.pop("examples", []) or []
    workers = doc.pop("workers", None) or {}
    try:
        if not isinstance(workers, dict):
            raise InputFileError(f"{path}: workers must be a mapping of worker policy fields")
        spec = events_pb2.ProjectSpec(schema_version=events_pb2.SCHEMA_VERSION_1, **doc,
                                      workers=events_pb2.WorkerPolicy(**workers))
        for i, example in enumerate(examples):
            # a multi_label example gives its set as a list under "labels"
            if isinstance(example, dict) and set(example) == {"text", "labels"} and isinstance(example["labels"], list):
                spec.examples.add(text=str(example["text"]), labels=[str(label) for label in example["labels"]])
                continue
            if not isinstance(example, dict) or set(example) != {"text", "label"}:
                raise InputFileError(f"{path}: examples[{i}] must have exactly 'text' and 'label' (or, for a "
                                     "multi_label project, 'text' and a list 'labels')")
            spec.examples.add(text=str(example["text"]), label=str(example["label"]))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"{path}: {exc}") from exc
    return resolve(spec)  # what ingest stores when it is applied (defaults from the project contract)


def load_items(path: Path) -> list[dict[str, Any]]:
    """Items from JSONL (one object a line) or CSV (header with item_id,text[,gold_label])."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read items: {exc}") from exc
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"item_id", "text"} <= set(rows[0]):
            raise InputFileError(f"{path}: the CSV header must include item_id and text")
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFileError(f"{path}:{number}: not valid JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise InputFileError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
    for number, row in enumerate(rows, 1):
        unknown = set(row) - ITEM_KEYS
        if unknown:
            raise InputFileError(f"{path}: item {number} has unknown fields {sorted(unknown)}; "
                                 f"allowed: {sorted(ITEM_KEYS)}")
        if not row.get("item_id") or not isinstance(row.get("text", row.get("prompt")), str):
            raise InputFileError(f"{path}: item {number} needs a non-empty item_id and a text (or, for a "
                                 "preference item, a prompt)")
        if not row.get("gold_label") and row.get("gold_label") != []:  # [] is a multi-label gold set: none
            row.pop("gold_label", None)
    return rows
