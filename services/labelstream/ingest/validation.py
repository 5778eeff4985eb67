"""Parsing and validation of incoming items (JSON or protobuf) and project specs.

Every value is checked before anything is built from it: the record's size before parsing, the
JSON's depth before json.loads, every string before a protobuf message holds it (the value rules
are in `labelstream.common.inputs`). Whatever a record holds, the outcome is a valid Item or an
InvalidMessage with a `DeadLetterReason`; the ids an InvalidMessage carries are only ones that
passed the rules (they key the dead letter and go into its headers), else empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError

from labelstream.common.dead_letters import DeadLetterReason, InvalidMessage
from labelstream.common.inputs import (
    MAX_LABEL_CHARS,
    check_metadata,
    check_text,
    loads_json,
    shown,
    text_problem,
    unsafe_character,
)
from labelstream.common.kafka import SCHEMA_VERSION
from labelstream.common.settings import SETTINGS
from labelstream.common.store import PROJECT_ID_PATTERN
from labelstream.router.scoring import STRATEGIES
from labelstream.router.thresholds import BOUNDS
from labelstream.v1 import events_pb2

MAX_ITEM_ID_CHARS = 200
ITEM_ID_PATTERN = re.compile(r"^[^\s:][^\s]{0,199}\Z")
JSON_FIELDS = {"schema_version", "project_id", "item_id", "text", "metadata", "gold_label"}
TASKS = {"single_label"}
OVERFLOW = {"auto", "wait", "people"}
DEFAULT_MAX_RECORD_BYTES = int(SETTINGS["max_record_bytes"].default)


def parse_raw_item(value: bytes, content_type: str = "",
                   max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> events_pb2.Item:
    """An items.raw message: JSON when its content-type says so or it starts with '{' or '[',
    protobuf `labelstream.v1.Item` otherwise. Its size is checked first, before any parsing."""
    if len(value) > max_record_bytes:
        raise InvalidMessage(DeadLetterReason.TOO_LARGE, f"record is {len(value)} bytes; the limit is "
                             f"{max_record_bytes} (LABELSTREAM_MAX_RECORD_BYTES)")
    is_json = "json" in content_type or ("protobuf" not in content_type and value.lstrip()[:1] in (b"{", b"["))
    if is_json:
        return item_from_json(value)
    item = events_pb2.Item()
    try:
        item.ParseFromString(value)
    except DecodeError as exc:
        raise InvalidMessage(DeadLetterReason.BAD_PROTOBUF, f"not a labelstream.v1.Item: {exc}; send an Item "
                             "serialized with the labelstream protos, or JSON with content-type "
                             "application/json") from exc
    if item.schema_version != SCHEMA_VERSION:
        raise InvalidMessage(DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
                             f"schema_version={item.schema_version}; this service reads {SCHEMA_VERSION}",
                             *_safe_ids(item.project_id, item.item_id))
    unknown = unknown_fields.UnknownFieldSet(item)
    if len(unknown):
        numbers = sorted({field.field_number for field in unknown})
        raise InvalidMessage(DeadLetterReason.BAD_PROTOBUF, f"not a labelstream.v1.Item: it has fields {numbers} "
                             "that an Item does not have, or with other types (another message type?)",
                             *_safe_ids(item.project_id, item.item_id))
    return item


def item_from_json(value: bytes) -> events_pb2.Item:
    doc = loads_json(value)
    if not isinstance(doc, dict):
        raise InvalidMessage(DeadLetterReason.BAD_JSON, "items.raw JSON must be an object of "
                             f"{sorted(JSON_FIELDS)}, one item per record")
    ids = _safe_ids(doc.get("project_id"), doc.get("item_id"))
    unknown = set(doc) - JSON_FIELDS
    if unknown:
        names = ", ".join(shown(name) for name in sorted(unknown)[:5])
        raise InvalidMessage(DeadLetterReason.UNKNOWN_FIELD,
                             f"unknown fields {names}; allowed: {sorted(JSON_FIELDS)}", *ids)
    for name in ("project_id", "item_id", "text", "gold_label"):
        if name in doc and not isinstance(doc[name], str):
            raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, f"{name} must be a string", *ids)
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, "metadata must be an object of strings", *ids)
    version = doc.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, f"schema_version must be the integer "
                             f"{SCHEMA_VERSION}", *ids)
    if version != SCHEMA_VERSION:
        raise InvalidMessage(DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
                             f"schema_version={version!r}; expected {SCHEMA_VERSION}", *ids)
    fields = {name: doc.get(name, "") for name in ("project_id", "item_id", "text", "gold_label")}
    check_item_values(**fields, metadata=metadata)  # before a protobuf message holds them
    return events_pb2.Item(schema_version=SCHEMA_VERSION, **fields, metadata=metadata)


def item_id_problem(item_id: str) -> str | None:
    """What is wrong with an item id (a sentence), or None."""
    if len(item_id) > MAX_ITEM_ID_CHARS:
        return f"item_id is {len(item_id)} characters; the limit is {MAX_ITEM_ID_CHARS}"
    unsafe = unsafe_character(item_id, identifier=True)
    if unsafe is not None:
        return f"item_id {shown(item_id)} contains {unsafe}: use printable characters only"
    if not ITEM_ID_PATTERN.match(item_id):
        return "item_id must be 1-200 characters, no whitespace, not starting with ':'"
    return None


def _safe_ids(project_id: Any, item_id: Any) -> tuple[str, str]:
    """The ids to attach to an InvalidMessage: each only when it is a valid id, else ''."""
    project = project_id if isinstance(project_id, str) and PROJECT_ID_PATTERN.fullmatch(project_id) else ""
    item = item_id if isinstance(item_id, str) and item_id_problem(item_id) is None else ""
    return project, item


def check_item_values(project_id: str, item_id: str, text: str, gold_label: str,
                      metadata: Mapping[str, str]) -> None:
    """The rules on an item's own values, which need no project; raise InvalidMessage."""
    if not project_id:
        raise InvalidMessage(DeadLetterReason.MISSING_PROJECT_ID, "project_id is required: name the project "
                             "the item belongs to", *_safe_ids("", item_id))
    if not PROJECT_ID_PATTERN.fullmatch(project_id):
        raise InvalidMessage(DeadLetterReason.BAD_PROJECT_ID, f"project_id {shown(project_id)} is not a project "
                             "id: 1-64 letters, digits, '_' or '-', starting with a letter or digit")
    problem = item_id_problem(item_id)
    if problem is not None:
        raise InvalidMessage(DeadLetterReason.BAD_ITEM_ID, problem, project_id)
    ids = (project_id, item_id)
    check_text(text, "text", *ids)
    if not text.strip():
        raise InvalidMessage(DeadLetterReason.EMPTY_TEXT, "text is empty: send the text to label", *ids)
    if gold_label:
        problem = label_problem(gold_label)
        if problem is not None:
            raise InvalidMessage(DeadLetterReason.BAD_LABEL, f"gold_label {problem}", *ids)
    check_metadata(metadata, *ids)


def label_problem(label: str) -> str | None:
    """What is wrong with a label name (a phrase to follow the field's name), or None."""
    if not label:
        return "is empty: name the label"
    if len(label) > MAX_LABEL_CHARS:
        return f"is {len(label)} characters; the limit is {MAX_LABEL_CHARS}: use a shorter name"
    unsafe = unsafe_character(label, identifier=False)
    if unsafe is not None:
        return f"{shown(label)} contains {unsafe}: remove it"
    return None


def validate_item_values(item: events_pb2.Item) -> None:
    """The item's own values (`check_item_values`): call it before looking its project up."""
    check_item_values(item.project_id, item.item_id, item.text, item.gold_label, item.metadata)


def validate_item(item: events_pb2.Item, project: events_pb2.ProjectSpec | None, max_bytes: int) -> None:
    """Raise InvalidMessage with a machine-readable reason when the item cannot be accepted."""
    validate_item_values(item)
    ids = (item.project_id, item.item_id)
    if project is None:
        raise InvalidMessage(DeadLetterReason.UNKNOWN_PROJECT, f"project {item.project_id!r} does not exist; "
                             "apply it first (labelstream project apply FILE)", *ids)
    limit = project.max_text_bytes or max_bytes
    size = len(item.text.encode("utf-8"))  # check_item_values made sure it encodes
    if size > limit:
        raise InvalidMessage(DeadLetterReason.TOO_LARGE, f"text is {size} bytes; the limit is {limit}: split "
                             "the text into several items", *ids)
    if item.gold_label and item.gold_label not in project.labels:
        raise InvalidMessage(DeadLetterReason.UNKNOWN_LABEL, f"gold_label {shown(item.gold_label)} is not one of "
                             f"{list(project.labels)}", *ids)


def validate_project(spec: events_pb2.ProjectSpec) -> list[str]:
    """Every problem with a project spec, as sentences; empty when it is valid."""
    problems = []
    if not PROJECT_ID_PATTERN.fullmatch(spec.project_id):
        problems.append("project_id must be 1-64 letters, digits, '_' or '-', starting with a letter or digit")
    if spec.task not in TASKS:
        problems.append(f"task must be one of {sorted(TASKS)}, not {shown(spec.task)}")
    if len(spec.labels) < 2 or len(set(spec.labels)) != len(spec.labels):
        problems.append("labels must list at least two distinct labels")
    for i, label in enumerate(spec.labels):
        problem = label_problem(label)
        if problem is not None:
            problems.append(f"labels[{i}] {problem}")
    for name in ("name", "instructions"):
        problem = text_problem(getattr(spec, name))
        if problem is not None:
            problems.append(f"{name} {problem}")
    for i, example in enumerate(spec.examples):
        if example.label not in spec.labels:
            problems.append(f"examples[{i}].label {shown(example.label)} is not one of the labels")
        problem = text_problem(example.text)
        if problem is not None:
            problems.append(f"examples[{i}].text {problem}")
        elif not example.text.strip():
            problems.append(f"examples[{i}].text is empty")
    if not 0.0 < spec.auto_accept_threshold <= 1.0:
        problems.append("auto_accept_threshold must be in (0, 1]")
    if spec.overlap < 1:
        problems.append("overlap must be at least 1")
    if spec.max_overlap < spec.overlap:
        problems.append("max_overlap must be at least overlap")
    if not spec.model:
        problems.append("model must name a Triton model, e.g. encoder_fewshot")
    if spec.max_text_bytes < 0:
        problems.append("max_text_bytes must not be negative")
    problems += _routing_problems(spec)
    problems += _worker_problems(spec)
    return problems


AGGREGATIONS = ("majority_vote", "weighted_vote", "dawid_skene", "one_coin_dawid_skene")
PAY_POLICIES = ("raise", "alert")


def _worker_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    if (spec.aggregation or "majority_vote") not in AGGREGATIONS:
        problems.append(f"aggregation must be one of {list(AGGREGATIONS)}, not {shown(spec.aggregation)}")
    if spec.posterior_bound and not 0.5 <= spec.posterior_bound < 1.0:
        problems.append("posterior_bound must be in [0.5, 1) (0: the default 0.95)")
    w = spec.workers
    shares = {"qualification_accuracy": w.qualification_accuracy, "block_accuracy": w.block_accuracy,
              "block_confidence": w.block_confidence, "gold_rate_new": w.gold_rate_new,
              "gold_rate_trusted": w.gold_rate_trusted, "gold_rate_suspect": w.gold_rate_suspect,
              "max_position_share": w.max_position_share, "max_shortcut_share": w.max_shortcut_share}
    problems += [f"workers.{name} must be in [0, 1]" for name, value in shares.items() if not 0.0 <= value <= 1.0]
    counts = {"qualification_tasks": w.qualification_tasks, "min_gold_to_block": w.min_gold_to_block,
              "trusted_after": w.trusted_after, "max_constant_streak": w.max_constant_streak}
    problems += [f"workers.{name} must not be negative" for name, value in counts.items() if value < 0]
    amounts = {"min_seconds_per_task": w.min_seconds_per_task, "min_hourly_wage": w.min_hourly_wage,
               "max_continuous_minutes": w.max_continuous_minutes, "break_minutes": w.break_minutes}
    problems += [f"workers.{name} must not be negative" for name, value in amounts.items() if value < 0]
    if w.pay_policy and w.pay_policy not in PAY_POLICIES:
        problems.append(f"workers.pay_policy must be one of {list(PAY_POLICIES)}")
    if w.min_hourly_wage and not spec.pay_per_answer:
        problems.append("workers.min_hourly_wage needs pay_per_answer (the pay it adjusts)")
    return problems


def _routing_problems(spec: events_pb2.ProjectSpec) -> list[str]:
    problems = []
    strategy = spec.routing_strategy or "threshold"
    if strategy not in STRATEGIES:
        problems.append(f"routing_strategy must be one of {list(STRATEGIES)}, not {shown(strategy)}")
    if strategy != "threshold":
        if not 0.5 <= spec.target_accuracy < 1.0:
            problems.append("target_accuracy must be in [0.5, 1)")
        if not 0.5 <= spec.confidence_level < 1.0:
            problems.append("confidence_level must be in [0.5, 1)")
        if (spec.accuracy_bound or "wilson") not in BOUNDS:
            problems.append(f"accuracy_bound must be one of {sorted(BOUNDS)}")
        if spec.min_verified < 10:
            problems.append("min_verified must be at least 10: thresholds need verified items")
        if spec.refit_every < 1:
            problems.append("refit_every must be at least 1")
    if not 0.0 <= spec.explore_fraction <= 0.5:
        problems.append("explore_fraction must be in [0, 0.5]")
    if not 0.0 <= spec.human_fraction_cap <= 1.0:
        problems.append("human_fraction_cap must be in [0, 1] (0: no cap)")
    if spec.budget_per_hour < 0 or spec.pay_per_answer < 0:
        problems.append("budget_per_hour and pay_per_answer must not be negative")
    if spec.budget_per_hour and not spec.pay_per_answer:
        problems.append("budget_per_hour needs pay_per_answer to count spend")
    if (spec.overflow or "people") not in OVERFLOW:
        problems.append(f"overflow must be one of {sorted(OVERFLOW)}")
    if not 0.0 <= spec.overlap_margin < 1.0:
        problems.append("overlap_margin must be in [0, 1) (0: the model never votes beside people)")
    if spec.models and (len(set(spec.models)) != len(spec.models) or not all(spec.models)):
        problems.append("models must list distinct Triton model names (two or more voters)")
    if spec.model_version and not spec.model_version.isdigit():
        problems.append("model_version must be a Triton version number, or empty for the latest")
    if spec.head_refit_every < 0:
        problems.append("head_refit_every must not be negative (0: never refit)")
    if spec.overlap_margin and spec.overlap_near_threshold < 2:
        problems.append("overlap_near_threshold must be at least 2 (the model and one person)")
    return problems
