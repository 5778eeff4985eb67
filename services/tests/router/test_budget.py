"""The human-fraction cap holds while the release loop sends deferred items to people."""

from __future__ import annotations

from labelstream.router.budget import Budget


def test_releasing_deferred_items_stops_at_the_cap_of_items_routed():
    budget = Budget(human_fraction_cap=0.3)
    for _ in range(100):  # every item wants people; over the cap they wait (deferred, counted as routed)
        budget.record(to_people=not budget.binding())
    assert budget.routed == 100 and budget.to_people == 30
    released = 0
    for _ in range(100):  # more items arrive, auto-accepted, and the release loop runs between them
        budget.record(to_people=False)
        while not budget.binding():
            budget.record_release()
            released += 1
    assert budget.routed == 200, "a released item was routed once, when it was deferred"
    assert budget.to_people == 60 and budget.to_people / budget.routed <= 0.3
    assert released == 30
