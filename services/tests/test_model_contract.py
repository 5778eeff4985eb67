import json

import numpy as np
import pytest

from labelstream.inference.contract import probabilities_by_project


def fake_predict(calls):
    def predict(texts, project):
        calls.append((tuple(texts), tuple(project["labels"])))
        width = len(project["labels"])
        return np.array([[1.0 / width] * width for _ in texts])
    return predict


def test_rows_are_grouped_by_project_and_put_back_in_order():
    a = json.dumps({"labels": ["x", "y"]}).encode()
    b = json.dumps({"labels": ["p", "q"], "examples": []}).encode()
    calls: list = []
    out = probabilities_by_project(["t1", "t2", "t3"], [a, b, a], fake_predict(calls))
    assert out.shape == (3, 2) and out.dtype == np.float32
    assert calls == [(("t1", "t3"), ("x", "y")), (("t2",), ("p", "q"))]


def test_bad_projects_are_refused():
    with pytest.raises(ValueError, match="non-empty 'labels'"):
        probabilities_by_project(["t"], [json.dumps({"labels": []}).encode()], fake_predict([]))
    two, three = json.dumps({"labels": ["a", "b"]}).encode(), json.dumps({"labels": ["a", "b", "c"]}).encode()
    with pytest.raises(ValueError, match="share a label count"):
        probabilities_by_project(["t", "u"], [two, three], fake_predict([]))
