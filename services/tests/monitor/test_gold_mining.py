"""Benchmark mining: unanimous trusted agreement becomes gold, balanced against shortcuts."""

from __future__ import annotations

from labelstream.monitor.mining import SHORTCUT_WEIGHT, mine

LABELS = ["no", "yes, entailed"]  # "no" is the first option, "yes, entailed" the longest
TEXTS = {f"i{i}": f"text {i}" for i in range(20)}


def votes_for(item: str, label: str, workers: list[str]) -> list[tuple[str, str, str]]:
    return [(item, w, label) for w in workers]


def test_only_unanimous_items_with_enough_trusted_votes_are_mined():
    trusted = {"a", "b", "c"}
    votes = votes_for("i0", "no", ["a", "b", "c"]) + votes_for("i1", "no", ["a", "b", "x"]) \
        + votes_for("i2", "no", ["a", "b", "c"]) + [("i2", "d", "yes, entailed")]
    mined = mine(votes, trusted, TEXTS, LABELS, {"no": 0.5, "yes, entailed": 0.5}, set(), limit=10)
    assert [c.item_id for c in mined] == ["i0"], "i1 lacks a third trusted vote; i2 has a dissent"
    assert mine(votes, trusted, TEXTS, LABELS, {}, {"i0"}, limit=10) == [], "existing gold is not mined again"


def test_classes_stay_in_proportion():
    trusted = {"a", "b", "c"}
    votes = []
    for i in range(12):
        votes += votes_for(f"i{i}", "no" if i < 10 else "yes, entailed", ["a", "b", "c"])
    mined = mine(votes, trusted, TEXTS, LABELS, {"no": 0.5, "yes, entailed": 0.5}, set(), limit=4)
    counts = {label: sum(c.label == label for c in mined) for label in LABELS}
    assert counts == {"no": 2, "yes, entailed": 2}, "a 10:2 pile of candidates still yields balanced gold"


def test_items_the_shortcut_gets_wrong_weigh_more():
    labels = ["a", "bb", "c"]           # shortcuts: "a" (first) and "bb" (longest)
    votes = votes_for("i0", "c", ["w1", "w2", "w3"]) + votes_for("i1", "a", ["w1", "w2", "w3"])
    mined = {c.item_id: c.weight for c in mine(votes, {"w1", "w2", "w3"}, TEXTS, labels, {}, set(), limit=10)}
    assert mined == {"i0": SHORTCUT_WEIGHT, "i1": 1.0}


def test_preference_items_whose_best_response_is_not_the_longest_weigh_more():
    """Scale's case: the longest response is the shortcut; gold it gets wrong is drawn more often,
    and mined gold keeps the item's responses for the dispatcher to show."""
    responses = {"i0": ("short and right", "a much longer answer that is worse"),
                 "i1": ("tiny", "the longest answer, which is the best"),
                 "i2": ("same size", "same-size")}  # no single longest: no shortcut to weigh against
    votes = votes_for("i0", "1", ["w1", "w2", "w3"]) + votes_for("i1", "2", ["w1", "w2", "w3"]) \
        + votes_for("i2", "2", ["w1", "w2", "w3"])
    mined = {c.item_id: c for c in mine(votes, {"w1", "w2", "w3"}, TEXTS, ["1", "2"], {}, set(), limit=10,
                                        responses=responses)}
    assert {item: c.weight for item, c in mined.items()} == {"i0": SHORTCUT_WEIGHT, "i1": 1.0, "i2": SHORTCUT_WEIGHT}
    assert mined["i0"].responses == responses["i0"]
