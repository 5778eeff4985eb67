"""The model on the real Triton server, through the same client the inference service uses."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from integration_tests.conftest import DEMO
from labelstream.cli.projects import load_project
from labelstream.inference.triton import TritonClassifier

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def triton(state):
    classifier = TritonClassifier(f"127.0.0.1:{state.ports.triton_grpc}", timeout_s=60)
    yield classifier
    classifier.close()


def test_encoder_model_gives_one_probability_per_label_summing_to_one(triton):
    spec = load_project(DEMO / "project.yaml")
    texts = ["an utterly delightful, warm and funny film", "a dull, lifeless and painfully boring mess"] * 40
    output = triton.predict("encoder_fewshot", texts, spec)
    assert output.probabilities.shape == (80, 2)
    np.testing.assert_allclose(output.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The response names its version: "1", or a later one once a project's head was refit.
    assert output.model_name == "encoder_fewshot" and output.model_version.isdigit()
    top = [spec.labels[i] for i in output.probabilities.argmax(axis=1)[:2]]
    assert top == ["positive", "negative"]


def test_three_label_project_and_bad_request(triton):
    spec = load_project(DEMO / "project.yaml")
    del spec.labels[:]
    spec.labels.extend(["sports", "business", "science"])
    del spec.examples[:]
    for text, label in [("the team won the final", "sports"), ("the striker scored twice", "sports"),
                        ("shares fell on weak earnings", "business"), ("the bank raised rates", "business"),
                        ("a new particle was observed", "science"), ("the telescope saw a galaxy", "science")]:
        spec.examples.add(text=text, label=label)
    output = triton.predict("encoder_fewshot", ["the goalkeeper saved a penalty"], spec)
    assert output.probabilities.shape == (1, 3)
    assert spec.labels[int(output.probabilities.argmax())] == "sports"
    del spec.labels[:]
    with pytest.raises(InferenceServerException, match="labels"):
        triton.predict("encoder_fewshot", ["text"], spec)
    assert triton.ready("encoder_fewshot")
