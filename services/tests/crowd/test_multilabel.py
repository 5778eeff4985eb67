"""Multi-label aggregation, final sets, uncertain labels, set metrics, MASI alpha and the set
fraud signals."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from labelstream.crowd import multilabel as ml
from labelstream.crowd import quality
from labelstream.crowd.agreement import krippendorff_alpha_sets, masi_distance
from labelstream.simulation import multilabel_raters as mr

LABELS = ("a", "b", "c", "d")


def crowd(seed: int, n_items: int = 1500, n_labels: int = 12, shortcuts: tuple[str, ...] = (),
          rate: float = 0.12) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], int]:
    rng = np.random.default_rng(seed)
    truth = rng.random((n_items, n_labels)) < rate
    raters = mr.draw_raters(20, n_labels, rng, shortcuts=shortcuts, same_set=np.eye(n_labels, dtype=bool)[0])
    return truth, mr.simulate(truth, raters, 5, rng), len(raters)


def macro_f1(method: str, truth: np.ndarray, answers: tuple[np.ndarray, np.ndarray, np.ndarray], n_workers: int,
             **options: float) -> float:
    fitted = ml.fit(method, *answers, truth.shape[0], n_workers, **options)
    return ml.set_metrics(ml.final_sets(fitted.posteriors), truth).macro_f1


def test_encode_and_decode_sets():
    chosen = ml.encode_sets([{"a", "c"}, set(), {ml.NONE}, ["d"]], LABELS)
    assert chosen.tolist() == [[True, False, True, False], [False] * 4, [False] * 4, [False, False, False, True]]
    assert ml.decode_sets(chosen, LABELS) == [frozenset("ac"), frozenset(), frozenset(), frozenset("d")]
    with pytest.raises(ValueError, match="not one of"):
        ml.encode_sets([{"z"}], LABELS)


def test_majority_posteriors_are_vote_shares():
    items = np.array([0, 0, 0, 1])
    chosen = ml.encode_sets([{"a"}, {"a", "b"}, set(), {"c"}], LABELS)
    shares = ml.majority_posteriors(items, chosen, 3)
    assert shares[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0])
    assert shares[1].tolist() == [0, 0, 1, 0] and shares[2].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_label_ds_beats_majority_with_shortcut_raters(seed):
    # 6 of 20 raters take shortcuts: with 5 answers an item often has 2 of them, which majority
    # vote cannot outvote on a rare label; DS learns they carry no information
    truth, answers, workers = crowd(seed, shortcuts=("none", "none", "all", "all", "same_set", "same_set"))
    majority = macro_f1("majority", truth, answers, workers)
    per_label = macro_f1("per_label", truth, answers, workers)
    assert per_label > majority + 0.03


def test_pooled_ds_is_no_worse_than_per_label_on_honest_raters():
    truth, answers, workers = crowd(3)
    assert macro_f1("pooled", truth, answers, workers) >= macro_f1("per_label", truth, answers, workers) - 0.005


def test_per_label_fit_recovers_a_shortcut_raters_parameters():
    truth, answers, workers = crowd(4, shortcuts=("none", "all"))
    fitted = ml.fit("per_label", *answers, truth.shape[0], workers)
    sens, spec = fitted.sensitivity(), fitted.specificity()
    assert (sens[-2] < 0.2).all() and (spec[-1] < 0.05).all()            # "none" never ticks, "all" always does
    honest = slice(0, workers - 2)
    assert 0.65 < sens[honest].mean() < 0.95 and spec[honest].mean() > 0.94


def test_the_model_votes_per_label():
    # one "yes" from an unknown worker and one "no": the model tips each label its way
    items, workers = np.array([0, 0]), np.array([0, 1])
    chosen = np.array([[True, True], [False, False]])
    probs = np.array([[0.95, 0.05]])
    fitted = ml.fit("per_label", items, workers, chosen, 1, 2, model_probs=probs)
    assert fitted.posteriors[0, 0] > 0.5 > fitted.posteriors[0, 1]


def test_item_posteriors_match_the_batch_fit():
    truth, answers, workers = crowd(5, n_items=300)
    fitted = ml.fit("per_label", *answers, truth.shape[0], workers)
    items, who, chosen = answers
    rows = np.flatnonzero(items == 7)
    votes = [(int(who[n]), chosen[n]) for n in rows]
    assert ml.item_posteriors(fitted, votes) == pytest.approx(fitted.posteriors[7], abs=1e-9)
    majority = ml.fit("majority", *answers, truth.shape[0], workers)
    assert ml.item_posteriors(majority, votes) == pytest.approx(majority.posteriors[7])


def test_final_sets_cap_and_none_rule():
    p = np.array([[0.9, 0.7, 0.6, 0.1], [0.2, 0.4, 0.1, 0.0]])
    assert ml.final_sets(p).tolist() == [[True, True, True, False], [False] * 4]
    assert ml.final_sets(p, max_labels=2).tolist()[0] == [True, True, False, False]
    assert ml.final_sets(p, none_rule="top").tolist()[1] == [False, True, False, False]
    with pytest.raises(ValueError):
        ml.final_sets(p, none_rule="maybe")


def test_uncertain_labels_and_decide_set():
    p = np.array([0.97, 0.5, 0.02, 0.85])
    assert ml.uncertain_labels(p, 0.1, 0.9).tolist() == [False, True, False, True]
    waiting = ml.decide_set(p, LABELS, votes=3, max_votes=7)
    assert waiting.labels is None and waiting.ask == ("b", "d")
    final = ml.decide_set(p, LABELS, votes=7, max_votes=7)
    assert final.labels == frozenset({"a", "b", "d"}) and final.ask == ()
    settled = ml.decide_set(np.array([0.99, 0.01, 0.0, 0.01]), LABELS, votes=3, max_votes=7)
    assert settled.labels == frozenset({"a"})


def test_set_metrics_on_a_hand_computed_case():
    ref = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=bool)
    pred = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    m = ml.set_metrics(pred, ref)
    # label 0: tp 2 fp 0 fn 0; label 1: tp 1 fp 1 fn 1; label 2: tp 0 fp 0 fn 1
    assert m.precision[:2].tolist() == [1.0, 0.5] and math.isnan(m.precision[2])
    assert m.recall.tolist() == [1.0, 0.5, 0.0]
    assert m.f1.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert m.micro_f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert m.macro_f1 == pytest.approx(0.5)
    assert m.hamming_loss == pytest.approx(3 / 12)
    assert m.exact_match == pytest.approx(0.25)
    assert m.support.tolist() == [2, 2, 1]


def test_masi_distance_on_known_cases():
    assert masi_distance({"a"}, {"a"}) == 0.0
    assert masi_distance(set(), set()) == 0.0
    assert masi_distance({"a", "b"}, {"a", "b", "c", "d"}) == pytest.approx(1 - 0.5 * 2 / 3)
    assert masi_distance({"a", "b"}, {"b", "c"}) == pytest.approx(1 - 1 / 3 * 1 / 3)
    assert masi_distance({"a"}, {"b"}) == 1.0


def test_masi_alpha_on_a_hand_computed_case():
    # item 1: {a}, {a}; item 2: {a}, {a, b}. Distances: d({a},{a,b}) = 1 - 1/2 * 2/3 = 2/3.
    # D_o = (0 + 2 * 2/3 / 1) / 4 = 1/3. Values: {a} x3, {a,b} x1: D_e = 2 * 3 * 1 * 2/3 / (4 * 3) = 1/3.
    triples = [(1, "w1", {"a"}), (1, "w2", {"a"}), (2, "w1", {"a"}), (2, "w2", {"a", "b"})]
    assert krippendorff_alpha_sets(triples) == pytest.approx(0.0)
    perfect = [(1, "w1", {"a"}), (1, "w2", {"a"}), (2, "w1", {"b"}), (2, "w2", {"b"})]
    assert krippendorff_alpha_sets(perfect) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_sets([(1, "w1", {"a"}), (1, "w2", {"a"})]))   # one set throughout
    assert math.isnan(krippendorff_alpha_sets([(1, "w1", {"a"}), (2, "w1", {"b"})]))   # nothing pairable


def test_masi_alpha_matches_nltk():
    agreement = pytest.importorskip("nltk.metrics.agreement")
    distance = pytest.importorskip("nltk.metrics.distance")
    rng = random.Random(0)
    triples = []
    for item in range(60):
        truth = {label for label in "abcde" if rng.random() < 0.3} or {"a"}
        for worker in rng.sample(range(8), rng.choice([2, 3, 4])):
            noisy = {label for label in "abcde" if (label in truth) == (rng.random() < 0.85)} or {"a"}
            triples.append((item, worker, frozenset(noisy)))
    task = agreement.AnnotationTask(data=[(w, i, s) for i, w, s in triples], distance=distance.masi_distance)
    assert krippendorff_alpha_sets(triples) == pytest.approx(task.alpha(), abs=1e-12)


def test_set_fraud_signals():
    labels = list(LABELS)
    honest = [{"a"}, {"b", "c"}, set(), {"d"}, {"a", "b"}] * 4
    assert quality.set_fraud_signals(honest, labels) == []
    assert quality.none_share(honest) == pytest.approx(0.2)
    nothing = [set()] * 19 + [{"a"}]
    assert quality.set_fraud_signals(nothing, labels) == ["none_answers", "same_set"]
    everything = [set(labels)] * 20
    assert quality.all_share(everything, labels) == 1.0
    assert quality.set_fraud_signals(everything, labels) == ["all_labels", "same_set"]
    same = [{"b"}] * 20
    assert quality.same_set_share(same) == 1.0 and quality.set_fraud_signals(same, labels) == ["same_set"]
    assert quality.set_fraud_signals(same[:19], labels) == []          # too few answers yet
    assert quality.set_fraud_signals(honest + same, labels) == ["same_set"]   # the last 20 count
