"""Budget state of one project: the share of items sent to people and the spend in the last hour."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

HOUR_S = 3600.0


@dataclass
class Budget:
    human_fraction_cap: float = 0.0   # 0: none
    budget_per_hour: float = 0.0      # 0: none
    cost_per_task: float = 0.0        # overlap x pay per answer
    routed: int = 0
    to_people: int = 0
    recent_tasks: collections.deque = field(default_factory=collections.deque)  # monotonic times

    def spend_last_hour(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self.recent_tasks and now - self.recent_tasks[0] > HOUR_S:
            self.recent_tasks.popleft()
        return len(self.recent_tasks) * self.cost_per_task

    def binding(self, now: float | None = None) -> str:
        """Why one more item may not go to people now ('' when it may)."""
        if self.human_fraction_cap and (self.to_people + 1) / (self.routed + 1) > self.human_fraction_cap:
            return f"human fraction cap {self.human_fraction_cap:.2f} reached ({self.to_people}/{self.routed})"
        if self.budget_per_hour and self.spend_last_hour(now) + self.cost_per_task > self.budget_per_hour:
            return f"budget {self.budget_per_hour:.2f}/h reached (spent {self.spend_last_hour(now):.2f})"
        return ""

    def record(self, to_people: bool, now: float | None = None) -> None:
        """An item routed (once per item: a deferred one counts here when it is deferred)."""
        self.routed += 1
        if to_people:
            self.record_release(now)

    def record_release(self, now: float | None = None) -> None:
        """A deferred item sent to people: it was counted as routed when it was deferred, so
        counting it as routed again would lower the measured human fraction and let the release
        loop send past the cap."""
        self.to_people += 1
        self.recent_tasks.append(time.monotonic() if now is None else now)
