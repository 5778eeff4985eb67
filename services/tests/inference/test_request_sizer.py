"""Requests to Triton are sized from each model's measured speed, so a slow model's request stays
well inside the client's timeout (an abandoned request keeps Triton busy, and its retry queues the
same work again)."""

from __future__ import annotations

from labelstream.inference.triton import FIRST_ROWS_PER_REQUEST, MAX_ROWS_PER_REQUEST, RequestSizer


def test_an_unknown_model_starts_small_and_a_fast_one_gets_full_batches():
    sizer = RequestSizer(timeout_s=30)
    assert sizer.rows("encoder") == FIRST_ROWS_PER_REQUEST
    sizer.observe("encoder", 8, 0.08)  # 10 ms a row
    assert sizer.rows("encoder") == MAX_ROWS_PER_REQUEST


def test_a_slow_model_gets_requests_of_a_quarter_of_the_timeout():
    sizer = RequestSizer(timeout_s=30)
    sizer.observe("causal", 8, 12.0)  # 1.5 s a row, as the causal LM on a slow machine
    assert sizer.rows("causal") == 5   # 7.5 s of work
    assert sizer.rows("encoder") == FIRST_ROWS_PER_REQUEST, "models are measured apart"


def test_a_timeout_shrinks_the_next_requests_and_speed_is_smoothed():
    sizer = RequestSizer(timeout_s=30, smoothing=0.5)
    sizer.observe("causal", 8, 1.6)        # 0.2 s a row: 37 rows fit
    assert sizer.rows("causal") == 37
    sizer.observe("causal", 37, 60.0)      # what a timed-out request reports: twice the timeout
    assert sizer.rows("causal") < 10
    assert sizer.rows("causal") >= 1
