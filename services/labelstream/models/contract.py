"""The Triton side of the labelstream model contract, shared by every model's model.py:
TEXT (one string a row) and PROJECT (the project's JSON a row) in, PROBS (one probability per
label of the row's project) out. Rows of one request may come from several projects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from labelstream.v1 import events_pb2

Predict = Callable[[list[str], dict[str, Any]], np.ndarray]


def probabilities_by_project(texts: list[str], specs: list[bytes], predict: Predict) -> np.ndarray:
    """Each row's probabilities, calling `predict` once per distinct project in the request."""
    rows_of: dict[bytes, list[int]] = {}
    for row, spec in enumerate(specs):
        rows_of.setdefault(spec, []).append(row)
    probabilities: list[np.ndarray | None] = [None] * len(texts)
    for spec, rows in rows_of.items():
        project = json.loads(spec)
        if not project.get("labels"):
            raise ValueError("PROJECT must give a non-empty 'labels' list")
        for row, p in zip(rows, predict([texts[r] for r in rows], project), strict=True):
            probabilities[row] = p
    if len({len(p) for p in probabilities if p is not None}) != 1:
        raise ValueError("all rows of one request must share a label count")
    return np.stack(probabilities).astype(np.float32)


def execute(requests: list[Any], predict: Predict, model_name: str) -> list[Any]:
    """TritonPythonModel.execute for the contract: a bad request gets an error response and
    never takes the model down."""
    import triton_python_backend_utils as pb_utils

    responses = []
    for request in requests:
        try:
            texts = [t.decode("utf-8") for t in
                     pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)]
            specs = [bytes(s) for s in pb_utils.get_input_tensor_by_name(request, "PROJECT").as_numpy().reshape(-1)]
            out = pb_utils.Tensor("PROBS", probabilities_by_project(texts, specs, predict))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        except Exception as exc:  # noqa: BLE001 - any failure becomes this request's error
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[], error=pb_utils.TritonError(f"{model_name}: {exc}")))
    return responses


def option_orders(labels: list[str], count: int) -> list[list[int]]:
    """Orders in which a language model is shown the options, derived from the sorted label set
    (never from the project's label order): the sorted order and its reverse, then rotations of
    both, up to `count` distinct. Averaging over them cancels position bias."""
    canonical = sorted(range(len(labels)), key=lambda i: (labels[i], i))
    candidates = []
    for shift in range(len(labels)):
        rotated = canonical[shift:] + canonical[:shift]
        candidates += [rotated, rotated[::-1]]
    orders: list[list[int]] = []
    for order in candidates:
        if order not in orders:
            orders.append(order)
        if len(orders) == count:
            break
    return orders


def project_payload(spec: events_pb2.ProjectSpec) -> bytes:
    """What the model needs to know about a project, as the PROJECT input."""
    return json.dumps({
        "project_id": spec.project_id,
        "labels": list(spec.labels),
        "instructions": spec.instructions,
        "examples": [{"text": e.text, "label": e.label} for e in spec.examples],
    }, sort_keys=True).encode()
