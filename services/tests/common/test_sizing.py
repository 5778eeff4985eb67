"""Work sized to a time budget from measured speed: a consumer's batch stays well inside the
broker's max_poll_interval however slow its handler is."""

from __future__ import annotations

from labelstream.common.consumer import batch_sizer as consumer_sizer
from labelstream.common.settings import Settings
from labelstream.common.sizing import TimeBudgetSizer


def test_a_fast_handler_keeps_full_batches():
    sizer = consumer_sizer(Settings.from_env({}))
    assert sizer.size() == 64
    sizer.observe("", 64, 0.5)
    assert sizer.size() == 64


def test_a_slow_handler_gets_batches_it_finishes_within_a_third_of_the_poll_interval():
    settings = Settings.from_env({})
    sizer = consumer_sizer(settings)
    sizer.observe("", 64, 64 * 5.0)   # the causal LM judging HH-RLHF pairs on 2 cores: 5 s a pair
    batch = sizer.size()
    assert batch * 5.0 <= settings.kafka_max_poll_interval_ms / 1000 / 3
    assert batch == 20
    sizer.observe("", batch, batch * 50.0)   # slower still: never below one record
    sizer.observe("", 1, 1000.0)
    assert sizer.size() == 1


def test_keys_are_measured_apart_and_speed_is_smoothed():
    sizer = TimeBudgetSizer(10.0, first=4, most=100, smoothing=0.5)
    sizer.observe("slow", 10, 10.0)       # 1 s a unit
    assert sizer.size("slow") == 10 and sizer.size("fast") == 4
    sizer.observe("slow", 10, 30.0)       # 3 s a unit: smoothed to 2 s
    assert sizer.size("slow") == 5
