"""The consumer's failure policy (labelstream.common.consumer.FailurePolicy), without a broker:
an outage is waited out, a record's own failure is isolated, retried and dead-lettered, and
every other record is handled once, in order."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import grpc
import pytest
from kafka.errors import KafkaTimeoutError
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from tritonclient.utils import InferenceServerException

from labelstream.common.consumer import FailurePolicy, Stopped
from labelstream.common.dead_letters import DeadLetterReason, InvalidMessage
from labelstream.common.failures import TransientError, is_transient
from labelstream.common.producer import Outgoing
from labelstream.common.records import Incoming
from labelstream.common.topics import Topics
from labelstream.v1 import events_pb2

POISON = b"poison"


def records(count: int, topic: str = Topics.PREDICTIONS, poison_at: Sequence[int] = ()) -> list[Incoming]:
    return [Incoming(topic, i % 3, 100 + i, None, POISON if i in poison_at else f"r{i}".encode(), [])
            for i in range(count)]


def echo(record: Incoming) -> Outgoing:
    return Outgoing(Topics.LABELS_AUTO, record.value.decode(), events_pb2.FinalLabel(item_id=record.value.decode()),
                    [])


class Harness:
    """A policy over a handler that fails on POISON records with `error`; `published` holds what
    reached the 'broker', in order."""

    def __init__(self, error: BaseException | None = None, *, healthy: bool = True, heal_after: int = 0,
                 record_attempts: int = 3) -> None:
        self.error = error
        self.healthy = healthy
        self.heal_after = heal_after  # an outage: every call fails until this many calls were made
        self.calls = 0
        self.handled: list[bytes] = []
        self.published: list[Outgoing] = []
        self.health: list[bool] = []
        self.stop = threading.Event()
        self.policy = FailurePolicy("router", self.handle, self.published.extend, record_attempts=record_attempts,
                                    max_record_bytes=1000, probe=lambda: self.healthy, on_health=self.health.append,
                                    stop=self.stop, outage_backoff_s=(0.001, 0.004), record_backoff_s=0.001)

    def handle(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        self.calls += 1
        if self.calls <= self.heal_after:
            if self.calls == self.heal_after:
                self.healthy = True
            raise AutoReconnect("connection refused")
        if self.error is not None and any(r.value == POISON for r in batch):
            raise self.error
        self.handled += [r.value for r in batch]
        return [echo(r) for r in batch]

    def letters(self) -> list[events_pb2.DeadLetter]:
        return [o.message for o in self.published if o.topic == Topics.ITEMS_DLQ]

    def outputs(self) -> list[str]:
        return [o.key for o in self.published if o.topic != Topics.ITEMS_DLQ]


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"), MemoryError(),
                                   ValueError("bad value"), OperationFailure("key too large to index")])
def test_a_record_that_fails_on_its_own_is_isolated_retried_and_dead_lettered(error):
    harness = Harness(error)
    batch = records(64, poison_at=[37])
    harness.policy.handle(batch)
    assert harness.outputs() == [f"r{i}" for i in range(64) if i != 37], "every other record once, in order"
    (letter,) = harness.letters()
    assert letter.reason == DeadLetterReason.HANDLER_ERROR and letter.error_type == type(error).__name__
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (Topics.PREDICTIONS, 37 % 3, 137)
    assert letter.service == "router" and letter.payload == POISON and letter.attempts == 3
    assert type(error).__name__ in letter.detail
    assert harness.health == [], "a record's own failure is not an outage"


def test_bisection_takes_few_calls():
    harness = Harness(RecursionError())
    harness.policy.handle(records(64, poison_at=[0, 63]))
    assert len(harness.letters()) == 2 and len(harness.outputs()) == 62
    assert harness.calls <= 1 + 2 * 2 * 6 + 2 * 3, harness.calls  # halves down to each record, then its tries


def test_an_invalid_message_raised_by_a_batch_handler_keeps_its_reason_and_is_not_retried():
    harness = Harness(InvalidMessage(DeadLetterReason.BAD_PREDICTION, "probabilities do not sum to 1"))
    harness.policy.handle(records(8, poison_at=[3]))
    (letter,) = harness.letters()
    assert letter.reason == "bad_prediction" and letter.attempts == 1 and letter.error_type == ""
    assert harness.outputs() == [f"r{i}" for i in range(8) if i != 3]


def test_a_store_error_that_repeats_for_one_record_while_the_store_answers_is_that_records_own():
    harness = Harness(AutoReconnect("the server closed the connection"), healthy=True)
    harness.policy.transient_record_grace_s = 0.2
    started = time.monotonic()
    harness.policy.handle(records(10, poison_at=[4]))
    (letter,) = harness.letters()
    assert letter.reason == "handler_error" and letter.error_type == "AutoReconnect"
    assert harness.outputs() == [f"r{i}" for i in range(10) if i != 4]
    assert time.monotonic() - started >= 0.2, "a transient error is given its grace before the record is set aside"
    assert letter.attempts > 3


def test_an_outage_is_waited_out_without_dead_letters_and_reported():
    harness = Harness(healthy=False, heal_after=12)
    harness.policy.handle(records(16))
    assert harness.letters() == [], "nothing is dead-lettered for an outage"
    assert harness.outputs() == [f"r{i}" for i in range(16)]
    assert harness.health == [False, True], "unhealthy while it lasted, healthy once it healed"


def test_a_transient_blip_is_retried_whole_before_any_split():
    harness = Harness(healthy=True, heal_after=2)
    harness.policy.handle(records(16))
    assert harness.calls == 3 and harness.letters() == [] and len(harness.outputs()) == 16


def test_a_stop_during_an_outage_leaves_the_batch_uncommitted():
    harness = Harness(healthy=False, heal_after=10**9)
    threading.Timer(0.05, harness.stop.set).start()
    with pytest.raises(Stopped):
        harness.policy.handle(records(4))
    assert harness.published == []


def test_a_record_over_the_size_limit_is_dead_lettered_before_any_handler_sees_it():
    harness = Harness()
    batch = records(3)
    batch[1] = Incoming(Topics.PREDICTIONS, 0, 7, None, b"[" * 5000 + b"]" * 5000, [])
    harness.policy.handle(batch)
    (letter,) = harness.letters()
    assert letter.reason == "too_large" and "10000 bytes" in letter.detail
    assert harness.handled == [b"r0", b"r2"]
    # the letter keeps the record's head only, so that it passes the DLQ consumers' limit
    assert letter.payload == b"[" * 1000 and letter.payload_truncated and letter.payload_size == 10000
    assert len(letter.SerializeToString()) <= 1000 + 16 * 1024


def test_a_letter_on_the_dead_letter_topic_may_hold_a_record_at_the_limit():
    harness = Harness()
    harness.policy.handle([Incoming(Topics.ITEMS_DLQ, 0, 1, None, b"x" * 1500, [])])
    assert harness.handled == [b"x" * 1500] and harness.letters() == []


def test_a_dead_letter_that_cannot_be_handled_is_not_dead_lettered_again():
    harness = Harness(RecursionError())
    harness.policy.handle(records(4, topic=Topics.ITEMS_DLQ, poison_at=[2]))
    assert harness.letters() == [] and len(harness.outputs()) == 3


def test_the_dead_letter_topic_down_is_an_outage_not_a_loss():
    published: list[Outgoing] = []
    attempts = {"n": 0}

    def publish(out: list[Outgoing]) -> None:
        if any(o.topic == Topics.ITEMS_DLQ for o in out) and attempts["n"] < 3:
            attempts["n"] += 1
            raise KafkaTimeoutError("no broker")
        published.extend(out)

    def handler(batch):
        raise InvalidMessage(DeadLetterReason.BAD_JSON, "x")

    policy = FailurePolicy("ingest", handler, publish, outage_backoff_s=(0.001, 0.002))
    policy.handle(records(1, topic=Topics.ITEMS_RAW))
    assert [o.message.reason for o in published] == ["bad_json"] and attempts["n"] == 3


def test_transient_errors_are_told_from_a_records_own():
    unavailable = grpc.RpcError()
    unavailable.code = lambda: grpc.StatusCode.UNAVAILABLE
    invalid = grpc.RpcError()
    invalid.code = lambda: grpc.StatusCode.INVALID_ARGUMENT
    transient = [AutoReconnect(), NotPrimaryError("not primary"), ServerSelectionTimeoutError("no server"),
                 KafkaTimeoutError(), TimeoutError(), ConnectionRefusedError(), TransientError("Triton not ready"),
                 unavailable, InferenceServerException("down", status="StatusCode.UNAVAILABLE")]
    own = [RecursionError(), MemoryError(), ValueError(), OperationFailure("bad key"), DuplicateKeyError("dup"),
           invalid, InferenceServerException("bad input", status="StatusCode.INVALID_ARGUMENT"),
           InvalidMessage(DeadLetterReason.BAD_JSON, "x")]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in own] == [False] * len(own)
