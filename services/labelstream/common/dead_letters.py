"""Dead letters: the machine-readable reasons a record is set aside, and the letter itself.

Every consumed topic dead-letters to one topic, `items.dlq` (see `Topics.ITEMS_DLQ`). A letter
names its source topic, partition and offset, the service that gave up on it, the reason and a
short detail, and carries the record's bytes, so one consumer can watch, count and replay every
stream's rejects (replay sends `payload` back to `source_topic`). One topic rather than one per
source: a single place to alert on and a single retention to set, while the Prometheus counter
`labelstream_dead_letters_total{service,topic,reason}` still tells the streams apart.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter


class DeadLetterReason(StrEnum):
    """Why a record was dead-lettered (`DeadLetter.reason`, and gRPC INVALID_ARGUMENT messages)."""

    # the record's encoding
    BAD_JSON = "bad_json"                      # not JSON, not UTF-8, or nested deeper than allowed
    BAD_PROTOBUF = "bad_protobuf"              # not the topic's message type
    UNKNOWN_FIELD = "unknown_field"
    BAD_FIELD_TYPE = "bad_field_type"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    TOO_LARGE = "too_large"                    # the record, or its text, is over the limit
    # the item's values
    MISSING_PROJECT_ID = "missing_project_id"
    BAD_PROJECT_ID = "bad_project_id"
    BAD_ITEM_ID = "bad_item_id"                # pattern, control characters, bidi overrides, surrogates
    BAD_ID = "bad_id"                          # a task or worker id with unsafe characters
    BAD_TEXT = "bad_text"                      # not valid UTF-8 text (unpaired surrogates, NUL)
    BAD_LABEL = "bad_label"                    # a label name with control characters or bidi overrides
    BAD_METADATA = "bad_metadata"              # too many keys, keys or values too long, unsafe keys
    EMPTY_TEXT = "empty_text"
    BAD_RESPONSES = "bad_responses"            # a preference item's responses: count, type, empty, source
    DUPLICATE_RESPONSES = "duplicate_responses"  # two responses of one item are the same text
    BAD_ANNOTATORS = "bad_annotators"          # an item's named annotators: type, count, unsafe or repeated ids
    UNKNOWN_PROJECT = "unknown_project"
    UNKNOWN_LABEL = "unknown_label"
    BAD_LABEL_SET = "bad_label_set"            # a multi_label gold set: not a list of distinct labels, or empty
                                               # where the project has no none_label
    TOO_MANY_LABELS = "too_many_labels"        # a multi_label gold set over the project's max_labels_per_item
    BAD_PREDICTION = "bad_prediction"
    MODEL_VERSION_UNAVAILABLE = "model_version_unavailable"  # the project pins a version Triton lacks
    # the handler failed on this record alone, again and again, while the stream went on
    HANDLER_ERROR = "handler_error"


class InvalidMessage(Exception):
    """A message that can never be handled; it goes to the dead-letter topic."""

    def __init__(self, reason: DeadLetterReason | str, detail: str, project_id: str = "",
                 item_id: str = "") -> None:
        reason = DeadLetterReason(reason)  # an unknown reason is a bug here, not in the record
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.project_id = project_id
        self.item_id = item_id


# `labelstream_service`, not `service`: Prometheus' Kubernetes discovery sets `service` on every target.
DEAD_LETTERS = Counter("labelstream_dead_letters_total",
                       "Records dead-lettered (acknowledged on the dead-letter topic), by service, source topic "
                       "and reason", ["labelstream_service", "topic", "reason"])
