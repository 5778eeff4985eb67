"""Parsing and validation of incoming items (JSON or protobuf) and project specs."""

from __future__ import annotations

import json
import re

from google.protobuf.message import DecodeError

from labelstream.common.kafka import SCHEMA_VERSION, InvalidMessage
from labelstream.common.store import PROJECT_ID_PATTERN
from labelstream.router.scoring import STRATEGIES
from labelstream.router.thresholds import BOUNDS
from labelstream.v1 import events_pb2

ITEM_ID_PATTERN = re.compile(r"^[^\s:][^\s]{0,199}$")
JSON_FIELDS = {"schema_version", "project_id", "item_id", "text", "metadata", "gold_label"}
TASKS = {"single_label"}
OVERFLOW = {"auto", "wait", "people"}


def parse_raw_item(value: bytes, content_type: str = "") -> events_pb2.Item:
    """An items.raw message: JSON when its content-type says so or it starts with '{' or '[',
    protobuf `labelstream.v1.Item` otherwise."""
    is_json = "json" in content_type or ("protobuf" not in content_type and value.lstrip()[:1] in (b"{", b"["))
    if is_json:
        return item_from_json(value)
    item = events_pb2.Item()
    try:
        item.ParseFromString(value)
    except DecodeError as exc:
        raise InvalidMessage("bad_protobuf", f"not a labelstream.v1.Item: {exc}") from exc
    if item.schema_version != SCHEMA_VERSION:
        raise InvalidMessage("unknown_schema_version",
                             f"schema_version={item.schema_version}; this service reads {SCHEMA_VERSION}",
                             item.project_id, item.item_id)
    return item


def item_from_json(value: bytes) -> events_pb2.Item:
    try:
        doc = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage("bad_json", f"items.raw value is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidMessage("bad_json", "items.raw JSON must be an object")
    unknown = set(doc) - JSON_FIELDS
    if unknown:
        raise InvalidMessage("unknown_field", f"unknown fields {sorted(unknown)}; allowed: {sorted(JSON_FIELDS)}",
                             str(doc.get("project_id", "")), str(doc.get("item_id", "")))
    for name in ("project_id", "item_id", "text", "gold_label"):
        if name in doc and not isinstance(doc[name], str):
            raise InvalidMessage("bad_field_type", f"{name} must be a string",
                                 str(doc.get("project_id", "")), str(doc.get("item_id", "")))
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InvalidMessage("bad_field_type", "metadata must be an object of strings",
                             doc.get("project_id", ""), doc.get("item_id", ""))
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidMessage("unknown_schema_version", f"schema_version={version!r}; expected {SCHEMA_VERSION}",
                             doc.get("project_id", ""), doc.get("item_id", ""))
    return events_pb2.Item(
        schema_version=SCHEMA_VERSION, project_id=doc.get("project_id", ""), item_id=doc.get("item_id", ""),
        text=doc.get("text", ""), metadata=metadata, gold_label=doc.get("gold_label", ""))


def validate_item(item: events_pb2.Item, project: events_pb2.ProjectSpec | None, max_bytes: int) -> None:
    """Raise InvalidMessage with a machine-readable reason when the item cannot be accepted."""
    ids = (item.project_id, item.item_id)
    if not item.project_id:
        raise InvalidMessage("missing_project_id", "project_id is required", *ids)
    if not ITEM_ID_PATTERN.match(item.item_id):
        raise InvalidMessage("bad_item_id", "item_id must be 1-200 characters, no whitespace, not starting "
                             "with ':'", *ids)
    if project is None:
        raise InvalidMessage("unknown_project", f"project {item.project_id!r} does not exist; apply it first "
                             "(labelstream project apply FILE)", *ids)
    if not item.text.strip():
        raise InvalidMessage("empty_text", "text is empty", *ids)
    limit = project.max_text_bytes or max_bytes
    size = len(item.text.encode("utf-8"))
    if size > limit:
        raise InvalidMessage("too_large", f"text is {size} bytes; the limit is {limit}", *ids)
    if item.gold_label and item.gold_label not in project.labels:
        raise InvalidMessage("unknown_label", f"gold_label {item.gold_label!r} is not one of "
                             f"{list(project.labels)}", *ids)


def validate_project(spec: events_pb2.ProjectSpec) -> list[str]:
    """Every problem with a project spec, as sentences; empty when it is valid."""
    problems = []
    if not PROJECT_ID_PATTERN.match(spec.project_id):
        problems.append("project_id must be 1-64 letters, digits, '_' or '-', starting with a letter or digit")
    if spec.task not in TASKS:
        problems.append(f"task must be one of {sorted(TASKS)}, not {spec.task!r}")
    if len(spec.labels) < 2 or len(set(spec.labels)) != len(spec.labels):
        problems.append("labels must list at least two distinct labels")
    for i, example in enumerate(spec.examples):
        if example.label not in spec.labels:
            problems.append(f"examples[{i}].label {example.label!r} is not one of the labels")
        if not example.text.strip():
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
        problems.append(f"aggregation must be one of {list(AGGREGATIONS)}, not {spec.aggregation!r}")
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
        problems.append(f"routing_strategy must be one of {list(STRATEGIES)}, not {strategy!r}")
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
