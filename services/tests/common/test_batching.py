"""Group commit: concurrent requests share batches, each caller gets its own result or error."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from labelstream.common.batching import GroupCommit


def test_a_lone_request_runs_at_once_in_a_batch_of_one():
    seen: list[list[int]] = []
    commit = GroupCommit("test", lambda batch: seen.append(list(batch)) or [x * 2 for x in batch])
    assert commit.submit(21) == 42
    assert seen == [[21]]


def test_concurrent_requests_share_batches_and_get_their_own_results():
    sizes: list[int] = []

    def run(batch):
        sizes.append(len(batch))
        time.sleep(0.02)  # a store round trip: requests arriving meanwhile queue for the next batch
        return [f"r{x}" for x in batch]

    commit = GroupCommit("test", run)
    with ThreadPoolExecutor(16) as executor:
        results = list(executor.map(commit.submit, range(64)))
    assert results == [f"r{x}" for x in range(64)]
    assert sum(sizes) == 64 and commit.requests == 64
    assert len(sizes) < 32, f"requests did not share batches: {sizes}"
    assert max(sizes) > 1


def test_an_error_result_is_raised_in_its_caller_alone():
    commit = GroupCommit("test", lambda batch: [ValueError(f"bad {x}") if x < 0 else x for x in batch])
    assert commit.submit(3) == 3
    with pytest.raises(ValueError, match="bad -1"):
        commit.submit(-1)


def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs():
    calls = 0
    gate = threading.Event()

    def run(batch):
        nonlocal calls
        calls += 1
        if calls == 1:
            gate.wait(1)
            raise ConnectionError("store down")
        return list(batch)

    commit = GroupCommit("test", run)
    with ThreadPoolExecutor(4) as executor:
        first = executor.submit(commit.submit, 1)
        time.sleep(0.05)
        later = [executor.submit(commit.submit, x) for x in (2, 3)]
        gate.set()
        with pytest.raises(ConnectionError):
            first.result(timeout=5)
        assert [f.result(timeout=5) for f in later] == [2, 3]


def test_a_batch_that_returns_the_wrong_number_of_results_is_an_error():
    commit = GroupCommit("test", lambda batch: [])
    with pytest.raises(RuntimeError, match="returned 0 results"):
        commit.submit(1)


def test_a_queue_longer_than_a_batch_is_drained_by_successive_leaders():
    batches: list[list[int]] = []
    lock = threading.Lock()

    def run(batch):
        with lock:
            batches.append(list(batch))
        time.sleep(0.005)
        return [-x for x in batch]

    commit = GroupCommit("test", run, max_batch=3)
    with ThreadPoolExecutor(24) as executor:
        results = list(executor.map(commit.submit, range(120)))
    assert results == [-x for x in range(120)], "every caller got its own result"
    assert all(len(b) <= 3 for b in batches) and sum(len(b) for b in batches) == 120
    assert sorted(x for b in batches for x in b) == list(range(120)), "each request ran exactly once"
    assert commit.batches == len(batches) < 120, "requests shared batches"
