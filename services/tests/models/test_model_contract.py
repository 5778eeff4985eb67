import json

import numpy as np
import pytest

from labelstream.models.contract import probabilities_by_project


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


def test_option_orders_depend_on_the_label_set_not_the_project_order():
    from labelstream.models.contract import option_orders

    assert option_orders(["pos", "neg"], 2) == [[1, 0], [0, 1]]
    assert option_orders(["neg", "pos"], 2) == [[0, 1], [1, 0]]
    three = option_orders(["b", "a", "c"], 6)
    assert three[0] == [1, 0, 2] and len(three) == 6 and len({tuple(o) for o in three}) == 6
    assert option_orders(["a", "b"], 5) == [[0, 1], [1, 0]], "no more orders than there are distinct ones"
