"""The causal_lm Triton model's classifier (Gemma-3-270M via llama-cpp-python), run in-process.

The integration tests run the same code in the real Triton server. About 30 s on 2 idle cores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelstream.cli.projects import load_items, load_project
from labelstream.models.local import load_causal_classifier

ROOT = Path(__file__).resolve().parents[3]
SST2 = ROOT / "deploy" / "examples" / "sst2"
# Measured on this 2-core machine (100 items, 4 examples per class, 2 option orders, contextual
# calibration): 0.89; with 1 example per class 0.81. Chance is 0.5.
MIN_SST2_ACCURACY = 0.78


@pytest.fixture(scope="module")
def classifier() -> Any:
    return load_causal_classifier()


def sst2_project(per_class: int) -> dict[str, Any]:
    spec = load_project(SST2 / "project.yaml")
    examples = []
    for label in spec.labels:
        examples += [{"text": e.text, "label": e.label} for e in spec.examples if e.label == label][:per_class]
    return {"labels": list(spec.labels), "instructions": spec.instructions, "examples": examples}


def test_probabilities_have_one_column_per_label_and_sum_to_one(classifier: Any) -> None:
    project = {
        "labels": ["World", "Sports", "Business", "Sci/Tech"],  # "Sci/Tech" takes several tokens
        "instructions": "What is the topic of this news headline?",
        "examples": [{"text": "Rebels seize the capital as the president flees", "label": "World"},
                     {"text": "Striker scores twice as United win the cup final", "label": "Sports"},
                     {"text": "Shares fall after the bank misses its profit forecast", "label": "Business"},
                     {"text": "New chip doubles battery life of laptops", "label": "Sci/Tech"}],
    }
    texts = ["The goalkeeper saved a penalty in extra time", "Oil prices climb as markets rally", ""]
    probs = classifier.predict(texts, project)
    assert probs.shape == (3, 4) and probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert project["labels"][int(probs[0].argmax())] == "Sports"


def test_permuting_the_labels_permutes_the_probabilities(classifier: Any) -> None:
    labels = ["negative", "neutral", "positive"]
    examples = [{"text": "a tedious, joyless slog", "label": "negative"},
                {"text": "the film runs 95 minutes", "label": "neutral"},
                {"text": "a warm, funny and moving picture", "label": "positive"}]
    texts = ["an utterly delightful film", "a dull, boring mess", "it opens on friday"]
    base = classifier.predict(texts, {"labels": labels, "instructions": "Sentiment?", "examples": examples})
    for permutation in ([2, 0, 1], [1, 2, 0]):
        permuted = [labels[i] for i in permutation]
        probs = classifier.predict(texts, {"labels": permuted, "instructions": "Sentiment?", "examples": examples})
        np.testing.assert_allclose(probs, base[:, permutation], atol=1e-5)


def test_clear_cases_rank_the_right_label_first(classifier: Any) -> None:
    project = sst2_project(per_class=1)
    probs = classifier.predict(["an utterly delightful film", "a dull, boring mess"], project)
    assert [project["labels"][i] for i in probs.argmax(axis=1)] == ["positive", "negative"]
    assert probs[0, project["labels"].index("positive")] > 0.6
    assert probs[1, project["labels"].index("negative")] > 0.6


def test_accuracy_on_100_sst2_items_beats_chance(classifier: Any) -> None:
    project = sst2_project(per_class=4)
    items = load_items(SST2 / "items.jsonl")[:100]
    probs = classifier.predict([i["text"] for i in items], project)
    predicted = [project["labels"][k] for k in probs.argmax(axis=1)]
    accuracy = np.mean([p == i["gold_label"] for p, i in zip(predicted, items, strict=True)])
    assert accuracy > MIN_SST2_ACCURACY, f"accuracy {accuracy:.2f}"


def test_a_project_without_labels_is_refused(classifier: Any) -> None:
    with pytest.raises(ValueError, match="labels"):
        classifier.predict(["text"], {"labels": [], "examples": []})
    with pytest.raises(ValueError, match="distinct"):
        classifier.predict(["text"], {"labels": ["a", "a"], "examples": []})
