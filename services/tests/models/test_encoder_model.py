"""The Triton model's classifier, run in-process (the integration tests run it in Triton)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from labelstream.cli.projects import load_items, load_project

ROOT = Path(__file__).resolve().parents[3]
MODEL_DIR = ROOT / "deploy" / "triton" / "models" / "encoder_fewshot"


@pytest.fixture(scope="module")
def classifier():
    spec = importlib.util.spec_from_file_location("encoder_fewshot_model", MODEL_DIR / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FewShotEncoderClassifier(MODEL_DIR / "tokenizer.json")


def test_few_shot_head_beats_chance_on_sst2(classifier):
    spec = load_project(ROOT / "deploy" / "examples" / "sst2" / "project.yaml")
    project = {"labels": list(spec.labels), "examples": [{"text": e.text, "label": e.label} for e in spec.examples]}
    items = load_items(ROOT / "deploy" / "examples" / "sst2" / "items.jsonl")[:200]
    probs = classifier.predict([i["text"] for i in items], project)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    accuracy = np.mean([spec.labels[k] == i["gold_label"] for k, i in zip(probs.argmax(axis=1), items, strict=True)])
    assert accuracy > 0.65


def test_no_examples_means_uniform_probabilities(classifier):
    probs = classifier.predict(["anything"], {"labels": ["a", "b", "c"], "examples": []})
    np.testing.assert_allclose(probs, [[1 / 3] * 3], atol=1e-6)
