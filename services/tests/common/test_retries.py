"""The two retry helpers: start-up connections retried until a deadline, and Triton failures that
pass (unavailable, busy, timed out) retried a few times before the consumer's policy sees them."""

from __future__ import annotations

import time

import pytest
from tritonclient.utils import InferenceServerException

from labelstream.common.failures import retry_passing_failures, until_reachable
from labelstream.inference.triton import worth_retrying


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return value


def test_a_connection_is_retried_until_it_answers_and_the_last_error_raised_at_the_deadline() -> None:
    flaky = Flaky([ConnectionError("refused")] * 3)
    assert until_reachable(5.0, ConnectionError, every_s=0.01)(flaky, "up") == "up"
    assert flaky.calls == 4
    never = Flaky([ConnectionError(f"refused {i}") for i in range(1000)])
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="refused"):
        until_reachable(0.2, ConnectionError, every_s=0.02)(never, "up")
    assert 0.2 <= time.monotonic() - started < 2.0
    other = Flaky([ValueError("not a connection problem")])
    with pytest.raises(ValueError):
        until_reachable(5.0, ConnectionError, every_s=0.01)(other, "up")
    assert other.calls == 1  # only the named errors are waited out


def test_triton_failures_that_pass_are_retried_and_a_bad_request_is_not() -> None:
    unavailable = InferenceServerException("server restarting", status="StatusCode.UNAVAILABLE")
    deadline = InferenceServerException("Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")
    invalid = InferenceServerException("unexpected shape", status="StatusCode.INVALID_ARGUMENT")
    flaky = Flaky([unavailable, deadline])
    assert retry_passing_failures(4, worth_retrying, first_s=0.001)(flaky, "probs") == "probs"
    assert flaky.calls == 3
    bad = Flaky([invalid, invalid])
    with pytest.raises(InferenceServerException, match="unexpected shape"):
        retry_passing_failures(4, worth_retrying, first_s=0.001)(bad, "probs")
    assert bad.calls == 1  # the request itself is wrong: retrying cannot help
    down = Flaky([unavailable] * 10)
    with pytest.raises(InferenceServerException):
        retry_passing_failures(2, worth_retrying, first_s=0.001)(down, "probs")
    assert down.calls == 3  # the retries given, then the error
