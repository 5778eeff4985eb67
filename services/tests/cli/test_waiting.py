"""Waiting for final labels: a slow stream that keeps moving is waited for; a stuck one is reported."""

from __future__ import annotations

import itertools

import pytest

from labelstream.cli import client
from labelstream.v1 import services_pb2


@pytest.fixture
def fake_clock(monkeypatch):
    now = itertools.count(0.0, 10.0)   # every look at the clock is 10 s later
    monkeypatch.setattr(client.time, "monotonic", lambda: next(now))
    monkeypatch.setattr(client.time, "sleep", lambda _s: None)


def stats_sequence(monkeypatch, counts: list[int]) -> None:
    values = iter(counts)
    monkeypatch.setattr(client, "project_stats",
                        lambda _monitor, _project: services_pb2.ProjectStats(final_labels=next(values)))


def test_a_slow_stream_that_keeps_moving_is_waited_for(fake_clock, monkeypatch):
    stats_sequence(monkeypatch, list(range(0, 101)))   # one new label per look, 10 s apart
    stats = client.wait_for_final_labels(None, "p", 100, timeout_s=float("inf"), stall_s=60)
    assert stats.final_labels == 100


def test_a_stuck_stream_is_reported_after_the_stall(fake_clock, monkeypatch):
    stats_sequence(monkeypatch, [1, 2, 3] + [3] * 100)
    with pytest.raises(TimeoutError, match="no new final label for 60s \\(3 of 10 final\\)"):
        client.wait_for_final_labels(None, "p", 10, timeout_s=float("inf"), stall_s=60)


def test_the_whole_wait_is_still_bounded(fake_clock, monkeypatch):
    stats_sequence(monkeypatch, list(range(0, 1000)))
    with pytest.raises(TimeoutError, match="of 1000 items have a final label after 100s"):
        client.wait_for_final_labels(None, "p", 1000, timeout_s=100, stall_s=60)
