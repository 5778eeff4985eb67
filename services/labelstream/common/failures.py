"""Telling an outage from a record's own failure.

A consumer must treat the two oppositely: an outage of a dependency (store, broker, Triton) is
waited out without limit, because every record would fail the same way and none may be lost;
a record's own failure is isolated, retried a few times and dead-lettered, because waiting for
it would stall every record behind it. `is_transient` classifies an exception by its type;
since a dependency can also fail for one record only (a store error on one odd key while the
others succeed), the consumer loop confirms an outage with a health probe before it waits.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from kafka.errors import KafkaError
from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)
from tritonclient.utils import InferenceServerException

TRANSIENT_GRPC_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED}
TRANSIENT_TRITON_STATUSES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


class TransientError(Exception):
    """Raised by a service when a dependency it needs is not there (e.g. Triton not ready)."""


def is_transient(error: BaseException) -> bool:
    """Whether `error` says a dependency is unreachable or overloaded (retry later) rather than
    that this input cannot be handled."""
    if isinstance(error, TransientError | TimeoutError | ConnectionError):
        return True
    # AutoReconnect covers NotPrimaryError and NetworkTimeout; ConnectionFailure covers
    # ServerSelectionTimeoutError
    if isinstance(error, AutoReconnect | ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    if isinstance(error, PyMongoError):
        return error.has_error_label("RetryableWriteError") or error.has_error_label("TransientTransactionError")
    if isinstance(error, KafkaError):
        return bool(getattr(error, "retriable", False)) or type(error).__name__ in (
            "KafkaTimeoutError", "NoBrokersAvailable", "KafkaConnectionError")
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in TRANSIENT_GRPC_CODES
    if isinstance(error, InferenceServerException):
        return any(code in str(error.status()) for code in TRANSIENT_TRITON_STATUSES)
    return False


def describe(error: BaseException, limit: int = 300) -> str:
    """A short, one-line account of an exception for a dead letter's detail."""
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def until_reachable(timeout_s: float, errors: type[BaseException] | tuple[type[BaseException], ...],
                    every_s: float = 0.5) -> Retrying:
    """Retries a connection attempt (`Retrying(...)(call, *args)`) every `every_s` while it raises
    `errors`, for up to `timeout_s`; then the last error is raised. For start-up only: once a
    service runs, the consumer loop's failure policy decides."""
    return Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(every_s),
                    retry=retry_if_exception_type(errors), reraise=True)


def retry_passing_failures(retries: int, is_worth_retrying: Callable[[BaseException], bool],
                           first_s: float = 0.2, longest_s: float = 5.0) -> Retrying:
    """Retries a call that failed with an error `is_worth_retrying` says passes in a moment (a
    connection being re-established, a busy server) `retries` times with exponential backoff,
    then raises it for the consumer's failure policy."""
    return Retrying(stop=stop_after_attempt(retries + 1), wait=wait_exponential(multiplier=first_s, max=longest_s),
                    retry=retry_if_exception(is_worth_retrying), reraise=True)
