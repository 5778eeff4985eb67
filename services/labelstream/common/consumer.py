"""The at-least-once consumer loop and the failure policy every consumer follows.

`ConsumerLoop` polls a batch, hands it to `FailurePolicy.handle`, which returns once every
record of it is handled and its output acknowledged by the broker, or the record set aside on
the dead-letter topic; only then are the batch's offsets committed. The policy is plain code
with no consumer of its own, so tests drive it without a broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError

from labelstream.common.dead_letters import DEAD_LETTERS, DeadLetterReason, InvalidMessage
from labelstream.common.failures import describe, is_transient
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.records import Incoming, dead_letter
from labelstream.common.settings import Settings
from labelstream.common.sizing import TimeBudgetSizer
from labelstream.common.telemetry import HANDLE_SECONDS, MESSAGES, log_fields
from labelstream.common.topics import Topics, consumer_group

log = logging.getLogger(__name__)

# Called with the partitions this process owns, by topic (without the prefix), after each rebalance.
AssignmentListener = Callable[[dict[str, set[int]]], None]
# Called with whether the loop's dependencies serve (False during an outage, True once it heals).
HealthListener = Callable[[bool], None]
# Whether the dependencies answer right now (store ping, broker, Triton...): tells an outage from
# an error that a dependency raises for one record only.
HealthProbe = Callable[[], bool]
Publish = Callable[[list[Outgoing]], object]

# Consecutive transient failures of a whole batch, with the dependencies answering the probe,
# after which the batch is searched for a record that fails on its own.
ISOLATE_AFTER_TRANSIENT = 3
OUTAGE_BACKOFF_S = (0.5, 10.0)   # first and longest wait between tries during an outage
RECORD_BACKOFF_S = 0.05          # first wait between tries of one isolated record (doubling)
# A record that fails with a transient error (a timeout, an unavailable store) while the probe
# passes is set aside only once it has failed for this long as well: an overloaded dependency
# (Triton answering readiness but timing out) must not cost valid records.
TRANSIENT_RECORD_GRACE_S = 60.0
# A dead letter holds a record of at most the record limit (a larger one's head) plus its
# envelope (reason, detail, source...): the dead-letter topic's limit leaves room for both.
DEAD_LETTER_ENVELOPE_BYTES = 16 * 1024


BatchHandler = Callable[[Sequence[Incoming]], list[Outgoing]]
RecordHandler = Callable[[Incoming], list[Outgoing]]


def per_record(handle: RecordHandler, service: str) -> BatchHandler:
    """A batch handler that handles records one by one, dead-lettering invalid ones."""

    def handle_batch(records: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for record in records:
            try:
                out.extend(handle(record))
                MESSAGES.labels(service, record.topic, "ok").inc()
            except InvalidMessage as error:
                log.warning("dead-lettered", extra=log_fields(
                    topic=record.topic, offset=record.offset, reason=error.reason, detail=error.detail))
                MESSAGES.labels(service, record.topic, "dead_lettered").inc()
                out.append(dead_letter(record, error, service))
        return out

    return handle_batch


def by_topic(handlers: dict[str, BatchHandler]) -> BatchHandler:
    """One batch handler for a consumer of several topics: each record to its topic's handler."""

    def handle_batch(records: Sequence[Incoming]) -> list[Outgoing]:
        by_topic: dict[str, list[Incoming]] = {}
        for record in records:  # order is kept within a topic (and so within a partition)
            by_topic.setdefault(record.topic, []).append(record)
        out: list[Outgoing] = []
        for topic, group in by_topic.items():
            out.extend(handlers[topic](group))
        return out

    return handle_batch


BATCH_SHARE_OF_POLL_INTERVAL = 1 / 3


def batch_sizer(settings: Settings) -> TimeBudgetSizer:
    """A batch sized to a third of the poll interval from the measured seconds per record, so a slow
    handler (a causal LM on a CPU) is not evicted from its group mid-batch and made to redo it."""
    return TimeBudgetSizer(settings.kafka_max_poll_interval_ms / 1000 * BATCH_SHARE_OF_POLL_INTERVAL,
                           first=settings.kafka_poll_max_records, most=settings.kafka_poll_max_records)


class Stopped(Exception):
    """The loop was asked to stop while the policy waited; the batch stays uncommitted."""


class FailurePolicy:
    """One failure policy for every consumer of every service.

    - A record larger than `max_record_bytes`, or one the handler reports as InvalidMessage, goes
      to the dead-letter topic with its reason.
    - An outage (a transient error while the health probe fails: store, broker or Triton
      unreachable) holds the batch: back off, retry without limit, report unhealthy (NOT_SERVING),
      and healthy again once a try succeeds. Nothing is dead-lettered for an outage.
    - Any other failure (RecursionError, MemoryError on one value, a store error that repeats for
      one record while the probe passes...) is a record's own: the batch is split in halves until
      each failing record stands alone, the rest is handled and published in order, and the
      record is tried `record_attempts` times (and, for a transient error, for at least
      `transient_record_grace_s` too), then dead-lettered as `handler_error` with its exception
      type, source topic, partition, offset and service.
    Records of the dead-letter topic itself are never dead-lettered again (a letter about a letter
    could loop): such a failure is logged and counted, and the record stays where it is, on the DLQ.
    """

    def __init__(self, service: str, handler: BatchHandler, publish: Publish, *, record_attempts: int = 3,
                 max_record_bytes: int = 1 << 20, probe: HealthProbe | None = None,
                 on_health: HealthListener | None = None, stop: threading.Event | None = None,
                 outage_backoff_s: tuple[float, float] = OUTAGE_BACKOFF_S,
                 record_backoff_s: float = RECORD_BACKOFF_S,
                 transient_record_grace_s: float = TRANSIENT_RECORD_GRACE_S) -> None:
        self.service = service
        self.transient_record_grace_s = transient_record_grace_s
        self.outage_backoff_s = outage_backoff_s
        self.record_backoff_s = record_backoff_s
        self.handler = handler
        self.publish = publish
        self.record_attempts = record_attempts
        self.max_record_bytes = max_record_bytes
        self.probe = probe or (lambda: True)
        self.on_health = on_health or (lambda _healthy: None)
        self.stop = stop or threading.Event()
        self.in_outage = False

    def handle(self, records: Sequence[Incoming]) -> None:
        """Handle and publish a batch, setting aside the records that fail on their own; returns
        once every record is handled or dead-lettered (raises Stopped if stopped first)."""
        fitting = []
        for record in records:
            limit = self.max_record_bytes + (DEAD_LETTER_ENVELOPE_BYTES if record.topic == Topics.ITEMS_DLQ else 0)
            if len(record.value) > limit:
                self._dead_letter(record, InvalidMessage(
                    DeadLetterReason.TOO_LARGE, f"record is {len(record.value)} bytes; the limit is "
                    f"{limit} (LABELSTREAM_MAX_RECORD_BYTES)"))
            else:
                fitting.append(record)
        if fitting:
            self._settle(fitting, whole_batch=True)

    def _settle(self, records: Sequence[Incoming], whole_batch: bool = False) -> None:
        """Handle `records`, splitting them in halves until each failing record stands alone."""
        if len(records) == 1:
            self._settle_one(records[0])
            return
        failures = 0
        while True:
            try:
                self._handle_and_publish(records)
                return
            except Stopped:
                raise
            except Exception as error:
                failures += 1
                if not is_transient(error):
                    if whole_batch:
                        log.warning("a batch failed on a record's own error; isolating it", extra=log_fields(
                            records=len(records), error=describe(error)))
                    break
                # a whole batch gets a few tries before it is split: a blip heals by itself
                if (failures >= ISOLATE_AFTER_TRANSIENT or not whole_batch) and self._healthy():
                    log.warning("a batch fails again and again while its dependencies answer; isolating "
                                "the failing record", extra=log_fields(records=len(records),
                                                                       error=describe(error)))
                    break
                self._wait_out(error, failures)
        middle = len(records) // 2
        self._settle(records[:middle])  # in order: a partition's records stay in order
        self._settle(records[middle:])

    def _settle_one(self, record: Incoming) -> None:
        """Try one record up to `record_attempts` times (an outage does not count), then dead-letter it."""
        attempts = 0
        outage_waits = 0
        first_failure = 0.0
        while True:
            try:
                self._handle_and_publish([record])
                return
            except Stopped:
                raise
            except InvalidMessage as error:  # a batch handler that reports an invalid record by raising
                self._dead_letter(record, error, attempts=attempts + 1)
                return
            except Exception as error:
                if is_transient(error) and not self._healthy():
                    outage_waits += 1
                    self._wait_out(error, outage_waits)
                    continue
                attempts += 1
                first_failure = first_failure or time.monotonic()
                patient = is_transient(error) and time.monotonic() - first_failure < self.transient_record_grace_s
                if attempts >= self.record_attempts and not patient:
                    log.error("a record fails on its own; dead-lettered", exc_info=error, extra=log_fields(
                        topic=record.topic, partition=record.partition, offset=record.offset,
                        attempts=attempts, error=describe(error)))
                    self._dead_letter(record, InvalidMessage(DeadLetterReason.HANDLER_ERROR, describe(error)),
                                      error_type=type(error).__name__, attempts=attempts)
                    return
                if self.stop.wait(min(self.record_backoff_s * 2 ** (attempts - 1), self.outage_backoff_s[1])):
                    raise Stopped from error

    def _handle_and_publish(self, records: Sequence[Incoming]) -> None:
        self.publish(self.handler(records))
        if self.in_outage:
            self.in_outage = False
            log.info("dependencies are back; consuming again")
            self.on_health(True)

    def _healthy(self) -> bool:
        try:
            return bool(self.probe())
        except Exception:
            return False

    def _wait_out(self, error: BaseException, failures: int) -> None:
        """An outage: report it and wait before the next try (raises Stopped on stop)."""
        if not self.in_outage:
            self.in_outage = True
            self.on_health(False)
        first, longest = self.outage_backoff_s
        backoff = min(first * 2 ** (failures - 1), longest)
        log.warning("a dependency is unreachable; the batch will be retried", extra=log_fields(
            error=describe(error), backoff_s=backoff, failures=failures))
        if self.stop.wait(backoff):
            raise Stopped from error

    def _dead_letter(self, record: Incoming, error: InvalidMessage, error_type: str = "",
                     attempts: int = 1) -> None:
        MESSAGES.labels(self.service, record.topic, "dead_lettered").inc()
        if record.topic == Topics.ITEMS_DLQ:
            DEAD_LETTERS.labels(self.service, record.topic, error.reason).inc()
            log.error("a dead letter could not be handled; it stays on the dead-letter topic", extra=log_fields(
                partition=record.partition, offset=record.offset, reason=error.reason, detail=error.detail))
            return
        log.warning("dead-lettered", extra=log_fields(topic=record.topic, partition=record.partition,
                                                       offset=record.offset, reason=error.reason,
                                                       detail=error.detail))
        letter = dead_letter(record, error, self.service, error_type, attempts, self.max_record_bytes)
        failures = 0
        while True:
            try:
                self.publish([letter])
                return
            except Exception as publish_error:  # the dead-letter topic unreachable: an outage
                failures += 1
                self._wait_out(publish_error, failures)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, prefix: str, listener: AssignmentListener) -> None:
        self._prefix = prefix
        self._listener = listener

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass  # the assignment that follows says what is owned now

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        owned: dict[str, set[int]] = {}
        for tp in assigned:
            owned.setdefault(tp.topic[len(self._prefix):], set()).add(tp.partition)
        log.info("partitions assigned", extra=log_fields(owned={t: sorted(p) for t, p in owned.items()}))
        self._listener(owned)


class ConsumerLoop:
    """At-least-once consumption: handle a batch (under the FailurePolicy), publish its output,
    then commit."""

    def __init__(self, settings: Settings, service: str, topics: Sequence[str], handler: BatchHandler,
                 producer: EventProducer, on_assigned: AssignmentListener | None = None,
                 probe: HealthProbe | None = None, on_health: HealthListener | None = None) -> None:
        """`on_assigned` hears which partitions the group gave this process, before any of their
        records is handled (a service that owns state per partition loads it there)."""
        self._settings = settings
        self._service = service
        self._topics = list(topics)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._prefix = settings.kafka_topic_prefix
        self.policy = FailurePolicy(service, handler, producer.publish, record_attempts=settings.record_attempts,
                                    max_record_bytes=settings.max_record_bytes, probe=probe, on_health=on_health,
                                    stop=self._stop)
        self.batches_committed = 0
        self.batch_sizer = batch_sizer(settings)
        self._consumer = KafkaConsumer(
            **settings.kafka_client_options(),
            group_id=consumer_group(settings, service),
            client_id=f"labelstream-{service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.kafka_poll_max_records,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
            metrics_enabled=False,
        )
        self._consumer.subscribe(topics=[self._prefix + t for t in self._topics],
                                 listener=_Rebalance(self._prefix, on_assigned) if on_assigned else None)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, reason: str) -> None:
        """Stop fetching (backpressure: e.g. the model server is down); the group membership stays."""
        if not self._paused.is_set():
            log.warning("pausing consumption", extra=log_fields(reason=reason))
        self._paused.set()

    def resume(self) -> None:
        if self._paused.is_set():
            log.info("resuming consumption")
        self._paused.clear()

    def _poll_batch(self) -> dict[TopicPartition, list]:
        """Up to kafka_poll_max_records records (fewer when the handler is slow: `batch_sizer`),
        waiting at most kafka_batch_wait_ms after the first one for the batch to fill
        (micro-batching by size and time)."""
        limit = self.batch_sizer.size()
        polled: dict[TopicPartition, list] = {}
        count = 0
        deadline = None
        while count < limit and not self._stop.is_set():
            timeout = self._settings.kafka_poll_timeout_ms
            if deadline is not None:
                timeout = int((deadline - time.monotonic()) * 1000)
                if timeout <= 0:
                    break
            chunk = self._consumer.poll(timeout_ms=timeout, max_records=limit - count)
            for tp, records in chunk.items():
                polled.setdefault(tp, []).extend(records)
                count += len(records)
            if deadline is None:
                if not count or not self._settings.kafka_batch_wait_ms:
                    break
                deadline = time.monotonic() + self._settings.kafka_batch_wait_ms / 1000
        return polled

    def run(self) -> None:
        log.info("consuming", extra=log_fields(topics=self._topics,
                                               group=consumer_group(self._settings, self._service)))
        try:
            while not self._stop.is_set():
                if self._paused.is_set():
                    self._consumer.pause(*self._consumer.assignment())
                    self._consumer.poll(timeout_ms=self._settings.kafka_poll_timeout_ms)  # keeps the group alive
                    continue
                if self._consumer.paused():
                    self._consumer.resume(*self._consumer.paused())
                polled = self._poll_batch()
                records = [
                    Incoming(tp.topic[len(self._prefix):], tp.partition, r.offset, r.key, r.value or b"",
                             list(r.headers or []))
                    for tp, batch in polled.items() for r in batch
                ]
                if not records:
                    continue
                started = time.monotonic()
                try:
                    with HANDLE_SECONDS.labels(self._service).time():
                        self.policy.handle(records)
                except Stopped:
                    self._rewind(polled)  # the next owner (or this process restarted) handles it
                    break
                self.batch_sizer.observe("", len(records), time.monotonic() - started)
                self._commit()
        finally:
            self._consumer.close(autocommit=False)
            log.info("consumer closed", extra=log_fields(batches_committed=self.batches_committed))

    def _rewind(self, polled: dict[TopicPartition, list]) -> None:
        for tp, batch in polled.items():
            if batch:
                self._consumer.seek(tp, batch[0].offset)

    def _commit(self) -> None:
        try:
            self._consumer.commit()
            self.batches_committed += 1
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced: the new owner re-handles the batch, and every effect is keyed.
            log.warning("commit failed after a rebalance", extra=log_fields(error=str(exc)))
