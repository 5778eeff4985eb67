"""How much work fits in a time budget, from the speed measured so far.

Two places need it: a Triton request must stay well inside the client's timeout (an abandoned
request keeps Triton busy and its retry queues the same work again), and a consumer's batch must be
handled well inside the broker's max_poll_interval (past it the group evicts the consumer, the
batch's commit fails, and another member handles the same records again: with the causal LM judging
64 HH-RLHF pairs in one batch on 2 cores, over 300 s, the inference service redid every batch).
"""

from __future__ import annotations

import threading


class TimeBudgetSizer:
    """Units of work (rows, records) per key that fit in `budget_s`, from the seconds per unit
    measured so far (exponentially smoothed), between 1 and `most`; `first` before any measurement."""

    def __init__(self, budget_s: float, first: int, most: int, smoothing: float = 0.3) -> None:
        self.budget_s = budget_s
        self.first = first
        self.most = most
        self.smoothing = smoothing
        self.seconds_per_unit: dict[str, float] = {}
        self._lock = threading.Lock()

    def size(self, key: str = "") -> int:
        with self._lock:
            per_unit = self.seconds_per_unit.get(key)
        if per_unit is None:
            return self.first
        return max(1, min(self.most, int(self.budget_s / max(per_unit, 1e-6))))

    def observe(self, key: str, units: int, seconds: float) -> None:
        measured = seconds / max(1, units)
        with self._lock:
            current = self.seconds_per_unit.get(key)
            self.seconds_per_unit[key] = measured if current is None else \
                (1 - self.smoothing) * current + self.smoothing * measured
