"""The encoder model's one-vs-rest head for multi-label projects (deploy/triton/models/encoder_fewshot)."""

import numpy as np
import pytest

from labelstream.models.local import load_encoder_module


@pytest.fixture(scope="module")
def module():
    return load_encoder_module()


def toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label k is held exactly when feature k is positive: 3 labels, any subset per item."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 6))
    return features, features[:, :3] > 0


def test_it_learns_a_separable_multi_label_problem(module):
    features, targets = toy(400, 0)
    head = module.OneVsRestHead.fit(features, targets)
    new_features, new_targets = toy(1000, 1)
    probabilities = head.predict(new_features)
    assert probabilities.shape == (1000, 3)
    assert ((probabilities >= 0.5) == new_targets).mean() > 0.97
    # Independent per label: items holding two or three labels get high probabilities for each.
    several = new_targets.sum(axis=1) >= 2
    assert (probabilities[several].sum(axis=1) > 1.2).mean() > 0.9
    assert not np.allclose(probabilities.sum(axis=1), 1.0)


def test_a_label_with_no_occurrence_gets_its_small_smoothed_rate(module):
    features, targets = toy(200, 2)
    targets = np.column_stack([targets, np.zeros(200, dtype=bool)])
    probabilities = module.OneVsRestHead.fit(features, targets).predict(features)
    np.testing.assert_allclose(probabilities[:, 3], 0.5 / 201, rtol=1e-6)
    assert ((probabilities[:, :3] >= 0.5) == targets[:, :3]).mean() > 0.95


def test_a_multi_label_project_is_served_by_it(module):
    """Through the classifier Triton runs: a project with task multi_label and example sets."""
    from labelstream.models.local import MODEL_DIR

    classifier = module.FewShotEncoderClassifier(MODEL_DIR / "tokenizer.json")
    project = {"project_id": "p", "task": "multi_label", "labels": ["food", "travel"], "examples": [
        {"text": "The pasta in Rome was wonderful", "labels": ["food", "travel"]},
        {"text": "I cooked a spicy curry tonight", "labels": ["food"]},
        {"text": "Our flight to Lisbon left at dawn", "labels": ["travel"]},
        {"text": "The quarterly report is due on Monday", "labels": []},
        {"text": "Fresh bread and cheese for lunch", "labels": ["food"]},
        {"text": "We took the night train across the Alps", "labels": ["travel"]},
    ]}
    probabilities = classifier.predict(["A delicious pizza in Naples on our holiday",
                                        "The meeting moved to Tuesday"], project)
    assert probabilities.shape == (2, 2)
    assert probabilities[0].min() > probabilities[1].max()
    empty = classifier.predict(["anything"], {**project, "examples": []})
    np.testing.assert_allclose(empty, [[0.5, 0.5]])
