import math

import pytest

from labelstream.crowd.agreement import agreement, fleiss_kappa, krippendorff_alpha, value_counts


def from_columns(*coders: str) -> list[tuple[int, str, str]]:
    """Triples from one string per coder, one character per item ('.' = no rating)."""
    return [(item, f"w{c}", value) for c, coder in enumerate(coders) for item, value in enumerate(coder)
            if value != "."]


def from_table(table: list[list[int]]) -> list[tuple[int, str, int]]:
    """Triples from a Fleiss table: counts per item and category, raters numbered per item."""
    triples = []
    for item, row in enumerate(table):
        raters = iter(range(sum(row)))
        triples += [(item, f"r{next(raters)}", category) for category, n in enumerate(row) for _ in range(n)]
    return triples


def test_perfect_agreement_is_one():
    triples = from_columns("abcab", "abcab", "abcab")
    assert krippendorff_alpha(triples) == pytest.approx(1.0)
    assert fleiss_kappa(triples) == pytest.approx(1.0)


def test_small_example_against_hand_computed_values():
    # items: (a,a) (a,b) (b,b) (b,b). Alpha: n=8, n_a=3, n_b=5, 2 disagreeing ordered pairs:
    # 1 - (n-1) * 2 / (2 * n_a * n_b) = 1 - 14/30 = 8/15.
    # Kappa: P = mean(1, 0, 1, 1) = 3/4, Pe = (3/8)^2 + (5/8)^2 = 34/64, (P - Pe) / (1 - Pe) = 7/15.
    triples = from_columns("aabb", "abbb")
    assert krippendorff_alpha(triples) == pytest.approx(8 / 15)
    assert fleiss_kappa(triples) == pytest.approx(7 / 15)


def test_krippendorff_reference_example_with_missing_ratings():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units,
    # missing values; nominal alpha = 0.743. Unit 12 has one rating and is not pairable.
    triples = from_columns("123321412...", "1233224125.3", ".3332342251.", "12332441251.")
    assert krippendorff_alpha(triples) == pytest.approx(0.743, abs=5e-4)


def test_fleiss_reference_example():
    # Fleiss' kappa example (10 subjects, 14 raters, 5 categories): kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(from_table(table)) == pytest.approx(0.210, abs=5e-4)


def test_unequal_rating_counts():
    # 3,3,3,2,1 ratings: the single rating says nothing; kappa keeps m=3 (9 ratings beat 2x4=8)
    full = [[3, 0], [0, 3], [2, 1]]
    triples = from_table(full + [[1, 1], [1, 0]])
    assert fleiss_kappa(triples) == pytest.approx(fleiss_kappa(from_table(full)))
    summary = agreement(triples)
    assert (summary.items, summary.ratings, summary.kappa_items, summary.kappa_raters) == (4, 11, 3, 3)
    # alpha uses every pairable rating
    assert krippendorff_alpha(triples) == pytest.approx(krippendorff_alpha(from_table(full + [[1, 1]])))
    # 4,3,3 ratings: the item with 4 is subsampled to 3, deterministically for a seed
    uneven = from_table([[4, 0], [1, 2], [0, 3]])
    kappa = fleiss_kappa(uneven, seed=1)
    assert -1.0 <= kappa <= 1.0 and kappa == fleiss_kappa(uneven, seed=1)
    assert agreement(uneven).kappa_items == 3


def test_a_worker_counts_once_per_item():
    triples = [(1, "w1", "a"), (1, "w1", "b"), (1, "w2", "b"), (2, "w1", "a"), (2, "w2", "a")]
    assert sorted(value_counts(triples).tolist()) == [[0, 2], [2, 0]]
    assert krippendorff_alpha(triples) == pytest.approx(1.0)


@pytest.mark.parametrize("triples", [
    [],
    [(1, "w1", "a")],
    [(1, "w1", "a"), (2, "w1", "b"), (3, "w2", "a")],         # every item rated once
    [(1, "w1", "a"), (1, "w2", "a"), (2, "w1", "a"), (2, "w2", "a")],  # one label throughout
])
def test_undefined_values_are_nan(triples):
    assert math.isnan(krippendorff_alpha(triples))
    assert math.isnan(fleiss_kappa(triples))
    summary = agreement(triples)
    assert math.isnan(summary.krippendorff_alpha) and math.isnan(summary.fleiss_kappa)
