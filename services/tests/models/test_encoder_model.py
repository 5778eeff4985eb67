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


def comparison(prompt: str, responses: list[str]) -> str:
    from labelstream.models.contract import preference_text

    return preference_text(prompt, responses)


QUESTIONS = [(f"What should I know about {topic}?", f"Here is what matters about {topic}: {detail}.")
             for topic, detail in [
                 ("baking bread", "knead the dough and let it rise twice"), ("tides", "the moon's pull moves the sea"),
                 ("vaccines", "they train the immune system safely"), ("chess openings", "control the centre early"),
                 ("saving money", "spend less than you earn and automate savings"),
                 ("volcanoes", "magma rises through cracks in the crust"), ("sleep", "adults need seven to nine hours"),
                 ("photosynthesis", "plants turn light, water and CO2 into sugar"),
                 ("bicycles", "check tyre pressure and keep the chain oiled"),
                 ("rainbows", "sunlight refracts in drops"),
                 ("jazz", "improvisation over chord changes"), ("compound interest", "interest earns interest"),
                 ("glaciers", "compacted snow flowing slowly downhill"), ("tea", "steep green tea cooler than black"),
                 ("running", "build mileage slowly to avoid injury"), ("bees", "they pollinate crops and make honey"),
             ]]


def test_the_preference_head_learns_from_verified_comparisons(classifier):
    """Before any comparison every response is equally likely; after twelve verified ones the
    on-topic answer beats another question's answer on four new questions, wherever it is put."""
    project = {"labels": ["1", "2"], "task": "pairwise", "examples": []}
    rows = [comparison(q, [a, QUESTIONS[(i + 5) % len(QUESTIONS)][1]]) for i, (q, a) in enumerate(QUESTIONS)]
    np.testing.assert_allclose(classifier.predict(rows[:2], project), [[0.5, 0.5]] * 2, atol=1e-6)
    train, test = QUESTIONS[:12], range(12, len(QUESTIONS))
    examples = []
    for i, (question, answer) in enumerate(train):
        other = QUESTIONS[(i + 5) % 12][1]
        responses, label = ([answer, other], "1") if i % 2 == 0 else ([other, answer], "2")
        examples.append({"text": comparison(question, responses), "label": label})
    trained = {**project, "examples": examples}
    on_topic_first = [comparison(QUESTIONS[i][0], [QUESTIONS[i][1], QUESTIONS[(i + 1) % 12][1]]) for i in test]
    on_topic_second = [comparison(QUESTIONS[i][0], [QUESTIONS[(i + 1) % 12][1], QUESTIONS[i][1]]) for i in test]
    first, second = classifier.predict(on_topic_first, trained), classifier.predict(on_topic_second, trained)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-5)
    assert (first[:, 0] > 0.5).all() and (second[:, 1] > 0.5).all(), (first, second)
    np.testing.assert_allclose(first[:, 0], second[:, 1], atol=1e-5)  # the head has no position to favour


def test_a_preference_head_with_ties_gives_them_their_share(classifier):
    project = {"labels": ["1", "2", "3", "tie"], "task": "best_of_n", "examples": [
        {"text": comparison(q, [a, QUESTIONS[(i + 3) % 16][1], QUESTIONS[(i + 7) % 16][1]]), "label": "1"}
        for i, (q, a) in enumerate(QUESTIONS[:6])] + [
        {"text": comparison(QUESTIONS[6][0], ["yes", "no", "maybe"]), "label": "tie"},
        {"text": comparison(QUESTIONS[7][0], ["a", "b", "c"]), "label": "tie"}]}
    probs = classifier.predict([comparison(QUESTIONS[9][0], [QUESTIONS[9][1], "x", "y"])], project)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)
    assert probs[0, 3] == pytest.approx(2 / 8), "two ties in eight verified comparisons"
