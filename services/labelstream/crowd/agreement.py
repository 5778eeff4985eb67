"""Inter-annotator agreement: Krippendorff's alpha (nominal, and with the MASI distance for
multi-label answers) and Fleiss' kappa. Plain functions, no I/O.

Input is a list of (item_id, worker_id, label) triples. A worker who answered the same item twice
counts once (the last answer), since both measures assume one rating per rater and item. Both
measures treat raters as exchangeable, so only the label counts per item matter.
Undefined values (no item with two ratings, or a single label used throughout so that chance
agreement is already perfect) are NaN, never an exception.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np
from scipy import sparse
from statsmodels.stats import inter_rater

Triple = tuple[Hashable, Hashable, Hashable]


@dataclass(frozen=True)
class Agreement:
    krippendorff_alpha: float
    fleiss_kappa: float
    items: int            # items with at least two ratings (what alpha uses)
    ratings: int          # ratings on those items
    kappa_items: int      # items Fleiss' kappa used after equalising the ratings per item
    kappa_raters: int     # ratings per item in Fleiss' kappa


def value_counts(triples: Sequence[Triple]) -> np.ndarray:
    """[items, labels] how many (distinct) workers gave each label to each item; one row per item."""
    latest: dict[tuple[Hashable, Hashable], Hashable] = {}
    for item, worker, label in triples:
        latest[(item, worker)] = label
    items: dict[Hashable, int] = {}
    labels: dict[Hashable, int] = {}
    rows, cols = [], []
    for (item, _), label in latest.items():
        rows.append(items.setdefault(item, len(items)))
        cols.append(labels.setdefault(label, len(labels)))
    counts = np.zeros((len(items), len(labels)), dtype=np.int64)
    np.add.at(counts, (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)), 1)
    return counts


def _pairable(counts: np.ndarray) -> np.ndarray:
    """Rows with at least two ratings: an item rated once says nothing about agreement."""
    return counts[counts.sum(axis=1) >= 2] if counts.size else counts.reshape(0, 0)


def krippendorff_alpha(triples: Sequence[Triple]) -> float:
    """Krippendorff's alpha for nominal labels (the `krippendorff` package), from value counts so
    that any number of workers and missing ratings are handled. NaN when undefined."""
    return _alpha_from_counts(_pairable(value_counts(triples)))


def _alpha_from_counts(counts: np.ndarray) -> float:
    used = counts[:, counts.sum(axis=0) > 0] if counts.size else counts
    if used.shape[0] == 0 or used.shape[1] < 2:
        return math.nan  # no pairable ratings, or one label only: expected disagreement is 0
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            alpha = krippendorff.alpha(value_counts=used, level_of_measurement="nominal")
        except (ValueError, ZeroDivisionError):
            return math.nan
    return float(alpha)


def fleiss_kappa(triples: Sequence[Triple], seed: int = 0) -> float:
    """Fleiss' kappa (statsmodels), which needs the same number of ratings per item.

    Unequal counts: items with fewer than two ratings are dropped; then every item is subsampled
    (without replacement, with a fixed seed) to the common count m that keeps the most ratings
    overall (m times the number of items with at least m ratings; ties go to the larger m),
    and items with fewer than m ratings are dropped. With equal counts nothing is dropped.
    NaN when undefined."""
    return _kappa_from_counts(equalise_ratings(_pairable(value_counts(triples)), seed))


def equalise_ratings(counts: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows of `counts` subsampled to the common rating count that keeps the most ratings (see
    fleiss_kappa); rows with fewer ratings are dropped."""
    if counts.shape[0] == 0:
        return counts
    per_item = counts.sum(axis=1)
    candidates = np.unique(per_item)
    kept = np.array([m * int((per_item >= m).sum()) for m in candidates])
    target = int(candidates[np.flatnonzero(kept == kept.max())[-1]])
    rng = np.random.default_rng(seed)
    rows = []
    for row in counts[per_item >= target]:
        if row.sum() > target:
            ratings = np.repeat(np.arange(row.shape[0]), row)
            row = np.bincount(rng.choice(ratings, size=target, replace=False), minlength=row.shape[0])
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def _kappa_from_counts(counts: np.ndarray) -> float:
    if counts.shape[0] == 0 or counts.sum(axis=1).min() < 2:
        return math.nan
    shares = counts.sum(axis=0) / counts.sum()
    if math.isclose(float((shares**2).sum()), 1.0):
        return math.nan  # a single label throughout: chance agreement is 1, kappa is 0/0
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = inter_rater.fleiss_kappa(counts, method="fleiss")
    return float(kappa)


def agreement(triples: Sequence[Triple], seed: int = 0) -> Agreement:
    """Both measures and the data they used, for the monitor's dashboard."""
    counts = _pairable(value_counts(triples))
    equal = equalise_ratings(counts, seed)
    return Agreement(krippendorff_alpha=_alpha_from_counts(counts), fleiss_kappa=_kappa_from_counts(equal),
                     items=int(counts.shape[0]), ratings=int(counts.sum()), kappa_items=int(equal.shape[0]),
                     kappa_raters=int(equal.sum(axis=1)[0]) if equal.shape[0] else 0)


# ---------------------------------------------------------------------------------------------
# Set-valued answers (multi-label tasks)


def masi_distance(a: Collection[Hashable], b: Collection[Hashable]) -> float:
    """MASI distance (Passonneau 2006) between two label sets: 1 - J * M, with J the Jaccard
    overlap and M the monotonicity weight (1 equal, 2/3 one a subset of the other, 1/3 they
    overlap otherwise, 0 disjoint). Two empty sets ("none of these" twice) agree: distance 0."""
    a, b = frozenset(a), frozenset(b)
    union = len(a | b)
    if union == 0:
        return 0.0
    common = len(a & b)
    if a == b:
        weight = 1.0
    elif common == min(len(a), len(b)):
        weight = 2.0 / 3.0
    elif common > 0:
        weight = 1.0 / 3.0
    else:
        weight = 0.0
    return 1.0 - common / union * weight


def masi_matrix(sets: Sequence[frozenset]) -> np.ndarray:
    """[V, V] masi_distance between every two of `sets`, in numpy: with many labels a crowd gives
    thousands of distinct sets, and millions of Python calls would take minutes."""
    universe = {label: j for j, label in enumerate({label for s in sets for label in s})}
    member = np.zeros((len(sets), len(universe)))
    for i, s in enumerate(sets):
        member[i, [universe[label] for label in s]] = 1.0
    common = member @ member.T
    size = member.sum(axis=1)
    union = size[:, None] + size[None, :] - common
    smaller = np.minimum(size[:, None], size[None, :])
    same = (common == size[:, None]) & (common == size[None, :])
    weight = np.where(same, 1.0, np.where(common == smaller, 2.0 / 3.0, np.where(common > 0, 1.0 / 3.0, 0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, 1.0 - common / union * weight, 0.0)


def krippendorff_alpha_sets(triples: Sequence[Triple],
                            distance: Callable[[frozenset, frozenset], float] = masi_distance) -> float:
    """Krippendorff's alpha for set-valued answers, (item, worker, set of labels) triples, with
    `distance` between two sets (MASI by default): 1 - D_o / D_e, where D_o is the mean distance
    between two answers to the same item (each item weighted by its answers, pairs within it by
    1/(m-1)) and D_e the mean distance between any two answers of those items. As for
    krippendorff_alpha, a worker's last answer to an item counts, items answered once are left
    out, and the undefined cases (nothing pairable, one set used throughout) are NaN."""
    latest: dict[tuple[Hashable, Hashable], frozenset] = {}
    for item, worker, labels in triples:
        latest[(item, worker)] = frozenset(labels)
    per_item: dict[Hashable, list[frozenset]] = {}
    for (item, _), labels in latest.items():
        per_item.setdefault(item, []).append(labels)
    # items as count vectors over the distinct sets, so each distance is computed once
    values: dict[frozenset, int] = {}
    rows = []
    for answers in per_item.values():
        if len(answers) < 2:
            continue
        row: dict[int, int] = {}
        for labels in answers:
            j = values.setdefault(labels, len(values))
            row[j] = row.get(j, 0) + 1
        rows.append(row)
    if not rows or len(values) < 2:
        return math.nan
    keys = list(values)
    delta = masi_matrix(keys) if distance is masi_distance else np.array([[distance(x, y) for y in keys]
                                                                          for x in keys])
    # items x distinct sets, sparse: an item holds a handful of answers among thousands of sets,
    # and a dense n' delta n per item would cost items x sets^2
    entries = [(i, j, n) for i, row in enumerate(rows) for j, n in row.items()]
    r, c, v = (np.array(column) for column in zip(*entries, strict=True))
    counts = sparse.csr_matrix((v.astype(float), (r, c)), shape=(len(rows), len(keys)))
    m = np.asarray(counts.sum(axis=1)).ravel()
    # sum over ordered pairs of different answers in an item: n' delta n (delta(x, x) = 0)
    within = np.asarray(counts.multiply(counts @ delta).sum(axis=1)).ravel()
    observed = (within / (m - 1)).sum() / m.sum()
    totals = np.asarray(counts.sum(axis=0)).ravel()
    n = totals.sum()
    expected = totals @ delta @ totals / (n * (n - 1))
    if expected == 0:
        return math.nan
    return float(1.0 - observed / expected)
