"""The causal language model (causal_lm) on the real Triton server, through the inference service's client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from integration_tests.conftest import DEMO, eventually
from labelstream.cli.projects import load_project
from labelstream.cli.stack import StackState
from labelstream.inference.triton import TritonClassifier
from labelstream.models.contract import project_payload
from labelstream.models.local import load_causal_classifier

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def triton(state: StackState) -> Iterator[TritonClassifier]:
    classifier = TritonClassifier(f"127.0.0.1:{state.ports.triton_grpc}", timeout_s=120)
    # Triton reports ready once every model has loaded; wait a little longer for this one anyway.
    assert eventually(lambda: classifier.ready("causal_lm"), timeout_s=120), "causal_lm never became ready"
    yield classifier
    classifier.close()


def test_causal_model_gives_one_probability_per_label_summing_to_one(triton: TritonClassifier) -> None:
    spec = load_project(DEMO / "project.yaml")
    texts = ["an utterly delightful, warm and funny film", "a dull, lifeless and painfully boring mess"] * 3
    output = triton.predict("causal_lm", texts, spec)
    assert output.probabilities.shape == (6, 2)
    np.testing.assert_allclose(output.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (output.model_name, output.model_version) == ("causal_lm", "1")
    assert [spec.labels[i] for i in output.probabilities.argmax(axis=1)[:2]] == ["positive", "negative"]
    # The same rows give the same answer (the cached prompt prefix changes nothing), and the same
    # answer as the model's code run in this process.
    np.testing.assert_allclose(output.probabilities[:2], output.probabilities[2:4], atol=1e-5)
    in_process = load_causal_classifier().predict(texts[:2], json.loads(project_payload(spec)))
    np.testing.assert_allclose(output.probabilities[:2], in_process, atol=1e-4)


def test_bad_request_errors_and_the_model_keeps_serving(triton: TritonClassifier) -> None:
    spec = load_project(DEMO / "project.yaml")
    del spec.labels[:]
    with pytest.raises(InferenceServerException, match="labels"):
        triton.predict("causal_lm", ["text"], spec)
    assert triton.ready("causal_lm")
    good = load_project(DEMO / "project.yaml")
    output = triton.predict("causal_lm", ["one of the best movies of the year"], good)
    assert output.probabilities.shape == (1, 2)
    np.testing.assert_allclose(output.probabilities.sum(axis=1), 1.0, atol=1e-5)
