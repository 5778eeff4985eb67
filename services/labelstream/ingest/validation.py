"""Parsing and validation of incoming items (JSON or protobuf); a project's rules are the
project contract's (labelstream.common.projects).

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
    PROJECT_ID_PATTERN,
    check_metadata,
    check_text,
    id_problem,
    loads_json,
    shown,
    unsafe_character,
)
from labelstream.common.projects import (
    MAX_RESPONSES,
    is_multi_label,
    is_preference,
    label_problem,
    label_set_key,
    label_set_problem,
    parse_label_set,
    reader_text,
)
from labelstream.common.settings import SETTINGS
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.v1 import events_pb2

MAX_ITEM_ID_CHARS = 200
ITEM_ID_PATTERN = re.compile(r"^[^\s:][^\s]{0,199}\Z")
JSON_FIELDS = {"schema_version", "project_id", "item_id", "text", "metadata", "gold_label", "prompt", "responses",
               "annotators"}
MAX_SOURCE_CHARS = 200
MAX_ANNOTATORS = 100
MAX_WORKER_ID_CHARS = 200
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
    gold = doc.get("gold_label")
    if isinstance(gold, list):  # a multi_label item's gold set: held as its key (projects.label_set_key)
        if not all(isinstance(label, str) for label in gold) or len(set(gold)) != len(gold):
            raise InvalidMessage(DeadLetterReason.BAD_LABEL_SET, "gold_label as a list must name distinct labels "
                                 "(strings)", *ids)
        doc["gold_label"] = label_set_key(gold)
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
    if "prompt" in doc:  # a preference item's prompt is its text; either name, not both
        if "text" in doc:
            raise InvalidMessage(DeadLetterReason.UNKNOWN_FIELD, "give a preference item's prompt as 'prompt' or "
                                 "as 'text', not both", *ids)
        if not isinstance(doc["prompt"], str):
            raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, "prompt must be a string", *ids)
        doc["text"] = doc.pop("prompt")
    responses = responses_from_json(doc.get("responses", []), ids)
    annotators = doc.get("annotators", [])
    if not isinstance(annotators, list) or not all(isinstance(a, str) for a in annotators):
        raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, "annotators must be a list of worker ids (strings)",
                             *ids)
    fields = {name: doc.get(name, "") for name in ("project_id", "item_id", "text", "gold_label")}
    check_item_values(**fields, metadata=metadata)  # before a protobuf message holds them
    check_responses(responses, *ids)
    check_annotators(annotators, *ids)
    return events_pb2.Item(schema_version=SCHEMA_VERSION, **fields, metadata=metadata,
                           responses=[events_pb2.Response(text=t, source=s) for t, s in responses],
                           annotators=annotators)


def responses_from_json(value: Any, ids: tuple[str, str]) -> list[tuple[str, str]]:
    """A JSON item's responses: strings, or objects {"text", "source"}; as (text, source) pairs."""
    if not isinstance(value, list):
        raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, "responses must be a list of strings or of "
                             '{"text": ..., "source": ...} objects', *ids)
    if len(value) > MAX_RESPONSES:
        raise InvalidMessage(DeadLetterReason.BAD_RESPONSES, f"{len(value)} responses; an item compares at most "
                             f"{MAX_RESPONSES}", *ids)
    pairs = []
    for i, response in enumerate(value):
        if isinstance(response, str):
            pairs.append((response, ""))
        elif (isinstance(response, dict) and "text" in response and set(response) <= {"text", "source"}
              and all(isinstance(v, str) for v in response.values())):
            pairs.append((response["text"], response.get("source", "")))
        else:
            raise InvalidMessage(DeadLetterReason.BAD_FIELD_TYPE, f"responses[{i}] must be a string or an object "
                                 'with a string "text" and an optional string "source"', *ids)
    return pairs


def check_responses(responses: list[tuple[str, str]], project_id: str, item_id: str) -> None:
    """The rules on a preference item's responses that need no project: valid, non-empty, distinct."""
    seen: dict[str, int] = {}
    for i, (text, source) in enumerate(responses):
        check_text(text, f"responses[{i}].text", project_id, item_id)
        if not text.strip():
            raise InvalidMessage(DeadLetterReason.BAD_RESPONSES, f"responses[{i}] is empty: every response "
                                 "needs text to compare", project_id, item_id)
        if len(source) > MAX_SOURCE_CHARS or unsafe_character(source, identifier=False) is not None:
            raise InvalidMessage(DeadLetterReason.BAD_RESPONSES, f"responses[{i}].source must be at most "
                                 f"{MAX_SOURCE_CHARS} printable characters", project_id, item_id)
        normalized = reader_text(text)
        if normalized in seen:
            raise InvalidMessage(DeadLetterReason.DUPLICATE_RESPONSES, f"responses[{i}] repeats "
                                 f"responses[{seen[normalized]}]: a comparison needs different responses",
                                 project_id, item_id)
        seen[normalized] = i


def check_annotators(annotators: list[str], project_id: str, item_id: str) -> None:
    """An item's named annotators: worker ids, safe, distinct, at most MAX_ANNOTATORS."""
    if len(annotators) > MAX_ANNOTATORS:
        raise InvalidMessage(DeadLetterReason.BAD_ANNOTATORS, f"{len(annotators)} annotators; an item names at "
                             f"most {MAX_ANNOTATORS}", project_id, item_id)
    seen: set[str] = set()
    for i, worker_id in enumerate(annotators):
        problem = ("empty" if not worker_id else f"{len(worker_id)} characters (the limit is {MAX_WORKER_ID_CHARS})"
                   if len(worker_id) > MAX_WORKER_ID_CHARS else id_problem("worker_id", worker_id))
        if problem:
            raise InvalidMessage(DeadLetterReason.BAD_ANNOTATORS, f"annotators[{i}] is {problem}: name workers by "
                                 "their ids", project_id, item_id)
        if worker_id in seen:
            raise InvalidMessage(DeadLetterReason.BAD_ANNOTATORS, f"annotators[{i}] repeats {worker_id!r}: a worker "
                                 "answers an item once", project_id, item_id)
        seen.add(worker_id)


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
        labels = parse_label_set(gold_label)
        for label in [gold_label] if labels is None else labels:
            problem = label_problem(label)
            if problem is not None:
                raise InvalidMessage(DeadLetterReason.BAD_LABEL, f"gold_label {problem}", *ids)
    check_metadata(metadata, *ids)


def validate_item_values(item: events_pb2.Item) -> None:
    """The item's own values (`check_item_values`): call it before looking its project up."""
    check_item_values(item.project_id, item.item_id, item.text, item.gold_label, item.metadata)
    check_responses([(r.text, r.source) for r in item.responses], item.project_id, item.item_id)
    check_annotators(list(item.annotators), item.project_id, item.item_id)


def validate_item(item: events_pb2.Item, project: events_pb2.ProjectSpec | None, max_bytes: int) -> None:
    """Raise InvalidMessage with a machine-readable reason when the item cannot be accepted."""
    validate_item_values(item)
    ids = (item.project_id, item.item_id)
    if project is None:
        raise InvalidMessage(DeadLetterReason.UNKNOWN_PROJECT, f"project {item.project_id!r} does not exist; "
                             "apply it first (labelstream project apply FILE)", *ids)
    if is_preference(project):
        if len(item.responses) != project.responses_per_item:
            raise InvalidMessage(DeadLetterReason.BAD_RESPONSES, f"{len(item.responses)} responses; project "
                                 f"{item.project_id!r} ({project.task}) compares {project.responses_per_item} per "
                                 "item", *ids)
    elif item.responses:
        raise InvalidMessage(DeadLetterReason.BAD_RESPONSES, f"project {item.project_id!r} is {project.task}: its "
                             "items are texts to label, without responses (apply a pairwise or best_of_n "
                             "project to compare responses)", *ids)
    limit = project.max_text_bytes or max_bytes
    # The prompt and every response: all of it goes to the model and to people.
    size = sum(len(t.encode("utf-8")) for t in [item.text, *(r.text for r in item.responses)])
    if size > limit:
        raise InvalidMessage(DeadLetterReason.TOO_LARGE, f"text is {size} bytes; the limit is {limit}: split "
                             "the text into several items" if not item.responses else f"the prompt and "
                             f"responses are {size} bytes; the limit is {limit}: shorten them or raise the "
                             "project's max_text_bytes", *ids)
    if is_multi_label(project):
        _check_gold_set(item, project)
    elif item.gold_label and item.gold_label not in project.labels:
        raise InvalidMessage(DeadLetterReason.UNKNOWN_LABEL, f"gold_label {shown(item.gold_label)} is not one of "
                             f"{list(project.labels)}", *ids)


def _check_gold_set(item: events_pb2.Item, project: events_pb2.ProjectSpec) -> None:
    """A multi_label item's gold set (its key, or a JSON list in any order): valid labels, within
    the cap, empty only where the project names the empty set. Stored as its canonical key."""
    if not item.gold_label:
        return
    ids = (item.project_id, item.item_id)
    labels = parse_label_set(item.gold_label)
    if labels is None:
        raise InvalidMessage(DeadLetterReason.BAD_LABEL_SET, f"gold_label {shown(item.gold_label)} is not a set of "
                             f"labels: project {item.project_id!r} is multi_label; give a list, e.g. "
                             f"{label_set_key(project.labels[:2])}", *ids)
    problem = label_set_problem(labels, project)
    if problem is not None:
        raise InvalidMessage(DeadLetterReason(problem[0]), f"gold_label: {problem[1]}", *ids)
    item.gold_label = label_set_key(labels)
