import csv
import random
from pathlib import Path

import numpy as np
import pytest

from labelstream.crowd import dawid_skene as ds
from labelstream.crowd.voting import majority_vote

SNOW_RTE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "crowd" / "snow2008" / "rte.standardized.tsv"


def simulate(confusions: np.ndarray, priors: np.ndarray, n_items: int, per_item: int, seed: int = 0):
    """Answers from workers with known confusions: each item gets `per_item` distinct random workers."""
    rng = np.random.default_rng(seed)
    n_workers, k, _ = confusions.shape
    truth = rng.choice(k, size=n_items, p=priors)
    items = np.repeat(np.arange(n_items), per_item)
    workers = np.concatenate([rng.choice(n_workers, size=per_item, replace=False) for _ in range(n_items)])
    labels = np.array([rng.choice(k, p=confusions[w, truth[i]]) for i, w in zip(items, workers, strict=True)])
    return truth, items, workers, labels


def random_confusions(n_workers: int, k: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.ones(k), size=(n_workers, k))
    accuracy = rng.uniform(0.55, 0.95, size=(n_workers, k))
    confusions = rows * (1 - accuracy)[..., None]
    idx = np.arange(k)
    confusions[:, idx, idx] = 0
    confusions = confusions / confusions.sum(axis=2, keepdims=True) * (1 - accuracy)[..., None]
    confusions[:, idx, idx] = accuracy
    return confusions


def test_full_dawid_skene_recovers_known_confusions_and_priors():
    true_conf = random_confusions(12, 3)
    priors = np.array([0.5, 0.3, 0.2])
    truth, items, workers, labels = simulate(true_conf, priors, n_items=3000, per_item=5)
    model = ds.fit_dawid_skene(items, workers, labels, 3000, 12, 3, method="full")
    assert model.converged and model.method == "full"
    assert np.abs(model.confusions - true_conf).max() < 0.1
    assert np.abs(model.class_priors - priors).max() < 0.03
    assert np.allclose(model.confusions.sum(axis=2), 1.0)
    assert np.allclose(model.posteriors.sum(axis=1), 1.0)
    assert (model.labels() == truth).mean() > 0.95
    true_accuracy = np.einsum("wkk,k->w", true_conf, priors)
    assert np.abs(ds.worker_accuracy(model) - true_accuracy).max() < 0.05


def test_one_coin_is_symmetric_and_full_captures_biased_workers():
    # Workers 0-5: accurate and symmetric; worker 6 says 0 for almost everything of class 1;
    # worker 7 has the labels swapped (misread the guidelines): useless to one coin, gold to full.
    k = 2
    confusions = ds.one_coin_confusions(np.full(8, 0.75), k)
    confusions[6] = [[0.95, 0.05], [0.9, 0.1]]
    confusions[7] = [[0.1, 0.9], [0.9, 0.1]]
    truth, items, workers, labels = simulate(confusions, np.array([0.5, 0.5]), n_items=2000, per_item=4, seed=3)
    full = ds.fit_dawid_skene(items, workers, labels, 2000, 8, k, method="full")
    coin = ds.fit_dawid_skene(items, workers, labels, 2000, 8, k, method="one_coin")
    assert coin.method == "one_coin" and np.allclose(coin.confusions.sum(axis=2), 1.0)
    assert full.confusions[6, 1, 0] > 0.8 and full.confusions[6, 0, 0] > 0.9
    assert full.confusions[7, 0, 1] > 0.8 and full.confusions[7, 1, 0] > 0.8
    assert np.allclose(coin.confusions[:, 1, 0], coin.confusions[:, 0, 1])    # one error rate per worker
    assert np.allclose(coin.confusions[7], 0.5)        # below chance: floored at chance, ignored
    assert np.abs(ds.worker_accuracy(coin)[:6] - 0.75).max() < 0.05
    assert (full.labels() == truth).mean() > (coin.labels() == truth).mean() + 0.02


def test_incremental_posterior_equals_batch_posterior_for_fixed_confusions():
    confusions = random_confusions(8, 3, seed=5)
    _, items, workers, labels = simulate(confusions, np.array([0.4, 0.4, 0.2]), n_items=300, per_item=4, seed=6)
    model = ds.fit_dawid_skene(items, workers, labels, 300, 8, 3)
    batch = ds.predict_posteriors(model, items, workers, labels, 300)
    for item in range(0, 300, 7):
        votes = [(int(w), int(lab)) for w, lab in zip(workers[items == item], labels[items == item], strict=True)]
        state = ds.ItemPosterior(model)
        log_post = ds.normalise_log(model.log_priors.copy())
        for worker, label in votes:
            state.add_vote(worker, label)
            log_post = ds.update_log_posterior(log_post, np.log(model.confusions[worker]), label)
        assert np.allclose(state.probabilities, batch[item], atol=1e-9)
        assert np.allclose(np.exp(log_post), batch[item], atol=1e-9)
        assert np.allclose(ds.posterior_from_votes(model, votes), batch[item], atol=1e-9)
        assert state.votes == len(votes)
    # the fit's own posteriors are the batch posteriors of its returned parameters
    assert np.allclose(model.posteriors, batch, atol=1e-9)


def test_unseen_worker_gets_the_pooled_confusion():
    confusions = ds.one_coin_confusions(np.array([0.9, 0.85, 0.8, 0.75]), 2)
    _, items, workers, labels = simulate(confusions, np.array([0.5, 0.5]), n_items=400, per_item=3, seed=2)
    model = ds.fit_dawid_skene(items, workers, labels, 400, 4, 2)
    assert model.default_confusion.shape == (2, 2) and np.allclose(model.default_confusion.sum(axis=1), 1.0)
    assert 0.75 < np.trace(model.default_confusion) / 2 < 0.92
    for stranger in (None, 4, 99, -1):
        posterior = ds.posterior_from_votes(model, [(stranger, 1)])
        expected = model.class_priors * model.default_confusion[:, 1]
        assert np.allclose(posterior, expected / expected.sum())
        assert posterior[1] > 0.7
    # the batch path maps unseen workers (-1) to the same pooled confusion
    batch = ds.predict_posteriors(model, np.array([0, 0]), np.array([-1, 1]), np.array([1, 1]), 1)
    assert np.allclose(batch[0], ds.posterior_from_votes(model, [(None, 1), (1, 1)]))


def test_model_probabilities_shift_the_posterior():
    confusions = ds.one_coin_confusions(np.full(5, 0.7), 2)
    _, items, workers, labels = simulate(confusions, np.array([0.5, 0.5]), n_items=500, per_item=3, seed=4)
    model = ds.fit_dawid_skene(items, workers, labels, 500, 5, 2)
    alone = ds.posterior_from_votes(model, [(0, 0)])
    with_model = ds.posterior_from_votes(model, [(0, 0)], model_probs=np.array([0.05, 0.95]))
    assert alone[0] > 0.5 and with_model[1] > alone[1] and with_model[1] > 0.5
    no_votes = ds.ItemPosterior(model, np.array([0.2, 0.8]), model_base_rates=np.array([0.5, 0.5]))
    assert no_votes.top() == (1, pytest.approx(0.8 * model.class_priors[1] / (
        0.2 * model.class_priors[0] + 0.8 * model.class_priors[1])))
    # in the batch fit: a tied item follows the model's evidence
    tied_items, tied_workers, tied_labels = np.array([0, 0]), np.array([0, 1]), np.array([0, 1])
    evidence = ds.model_log_evidence(np.array([[0.1, 0.9]]), base_rates=np.array([0.5, 0.5]))
    fit = ds.fit_dawid_skene(np.concatenate([items, tied_items + 500]), np.concatenate([workers, tied_workers]),
                             np.concatenate([labels, tied_labels]), 501, 5, 2,
                             item_priors_log=np.vstack([np.zeros((500, 2)), evidence]))
    assert fit.posteriors[500, 1] > 0.8


def test_warm_start_converges_faster_to_the_same_labels():
    confusions = random_confusions(10, 2, seed=8)
    _, items, workers, labels = simulate(confusions, np.array([0.6, 0.4]), n_items=1000, per_item=3, seed=9)
    first = ds.fit_dawid_skene(items[:2400], workers[:2400], labels[:2400], 1000, 10, 2)
    cold = ds.fit_dawid_skene(items, workers, labels, 1000, 10, 2)
    warm = ds.fit_dawid_skene(items, workers, labels, 1000, 10, 2, warm_start=first)
    seeded = ds.fit_dawid_skene(items, workers, labels, 1000, 10, 2, init_posteriors=cold.posteriors)
    assert warm.iterations < cold.iterations and seeded.iterations <= 3
    assert (warm.labels() == cold.labels()).mean() > 0.995
    # a previous model with fewer workers: new workers start from its pooled confusion
    small = ds.fit_dawid_skene(items[workers < 5], workers[workers < 5], labels[workers < 5], 1000, 5, 2)
    grown = ds.fit_dawid_skene(items, workers, labels, 1000, 10, 2, warm_start=small)
    assert grown.confusions.shape == (10, 2, 2) and (grown.labels() == cold.labels()).mean() > 0.99


def test_invalid_input_is_rejected():
    with pytest.raises(ValueError):
        ds.fit_dawid_skene(np.array([0]), np.array([0]), np.array([2]), 1, 1, 2)
    with pytest.raises(ValueError):
        ds.fit_dawid_skene(np.array([0]), np.array([0]), np.array([0]), 1, 1, 2, method="two_coin")
    with pytest.raises(ValueError):
        ds.fit_dawid_skene(np.array([0]), np.array([0]), np.array([0]), 1, 1, 2, item_priors_log=np.zeros((2, 2)))


def test_no_answers_gives_the_prior():
    model = ds.fit_dawid_skene(np.array([0]), np.array([0]), np.array([1]), 3, 1, 2)
    assert np.allclose(model.posteriors[1], model.posteriors[2])
    assert ds.majority_vote_labels(np.array([0]), np.array([1]), 3, 2).tolist() == [1, -1, -1]


def test_weighted_vote_and_majority_semantics():
    assert ds.weighted_vote([0, 1, 1], [3.0, 1.0, 1.0], 2) == 0
    assert ds.weighted_vote([0, 1, 1], [1.0, 1.0, 1.0], 2) == 1
    assert ds.weighted_vote([1, 0], [1.0, 1.0], 2) == 0          # tie: earliest label, as voting.py
    assert ds.weighted_vote([], [], 3) is None
    weights = ds.skill_weights(np.array([0.5, 0.9, 0.3, 1.0]), 2)
    assert weights[0] == pytest.approx(0.0) and weights[1] > 0 > weights[2] and np.isfinite(weights[3])
    assert ds.skill_weights(np.array([1 / 3]), 3)[0] == pytest.approx(0.0)
    # the batch majority matches voting.majority_vote's final answer (ties to the project's order)
    rng = random.Random(0)
    order = ["a", "b", "c"]
    for _ in range(200):
        votes = [rng.choice(order) for _ in range(rng.randint(1, 6))]
        expected = majority_vote(votes, order, required=len(votes), max_overlap=len(votes)).label
        got = ds.majority_vote_labels(np.zeros(len(votes)), np.array([order.index(v) for v in votes]), 1, 3)[0]
        assert order[got] == expected


def test_skill_weighted_vote_beats_majority_with_one_expert():
    # one near-perfect worker and four poor ones on every item
    confusions = ds.one_coin_confusions(np.array([0.98, 0.6, 0.6, 0.6, 0.6]), 2)
    truth, items, workers, labels = simulate(confusions, np.array([0.5, 0.5]), n_items=600, per_item=5, seed=11)
    gold = truth[items]
    accuracy = ds.accuracy_against(workers, labels, gold, 5)
    assert abs(accuracy[0] - 0.98) < 0.03
    weighted = ds.weighted_vote_labels(items, labels, ds.skill_weights(accuracy, 2)[workers], 600, 2)
    majority = ds.majority_vote_labels(items, labels, 600, 2)
    assert (weighted == truth).mean() > (majority == truth).mean() + 0.05


def test_leave_one_out_majority():
    items = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([0, 0, 1, 0, 1, 1])
    assert ds.leave_one_out_majority(items, labels, 3, 2).tolist() == [-1, -1, 0, 1, 0, -1]


def load_snow_rte():
    with SNOW_RTE.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    item_ids, items = np.unique([r["orig_id"] for r in rows], return_inverse=True)
    _, workers = np.unique([r["!amt_worker_ids"] for r in rows], return_inverse=True)
    labels = np.array([int(r["response"]) for r in rows])
    gold_by_id = {r["orig_id"]: int(r["gold"]) for r in rows}
    return items, workers, labels, np.array([gold_by_id[i] for i in item_ids])


def test_dawid_skene_beats_majority_vote_on_snow_rte():
    items, workers, labels, gold = load_snow_rte()
    n_items, n_workers = len(gold), int(workers.max()) + 1
    majority = (ds.majority_vote_labels(items, labels, n_items, 2) == gold).mean()
    full = ds.fit_dawid_skene(items, workers, labels, n_items, n_workers, 2, method="full")
    coin = ds.fit_dawid_skene(items, workers, labels, n_items, n_workers, 2, method="one_coin")
    assert (full.labels() == gold).mean() >= 0.92
    assert (coin.labels() == gold).mean() >= 0.92
    assert (full.labels() == gold).mean() > majority
