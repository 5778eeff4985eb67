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
        # A multi_label example carries its set as "labels" (the encoder's one-vs-rest head reads it).
        "examples": [{"text": e.text, "labels": list(e.labels)} if spec.task == "multi_label"
                     else {"text": e.text, "label": e.label} for e in spec.examples],
        # Preference projects ("pairwise", "best_of_n"): the labels are then "1".."N" (+ "tie").
        "task": spec.task,
        "allow_ties": spec.allow_ties,
        "responses_per_item": spec.responses_per_item,
    }, sort_keys=True).encode()


def preference_text(prompt: str, responses: list[str]) -> str:
    """The TEXT row of a preference item: its prompt (Item.text) and its responses' texts in
    canonical order, as JSON. Sources are left out: a model judges the texts alone."""
    return json.dumps({"prompt": prompt, "responses": list(responses)}, ensure_ascii=False)


def preference_choices(project: dict[str, Any]) -> tuple[int, bool] | None:
    """For a PROJECT whose task is pairwise or best_of_n: (responses per item, whether ties are
    allowed), checked against its labels (the canonical choices "1".."N", then "tie" if allowed);
    None for any other task."""
    from labelstream.common.projects import TIE, TaskKind, choice_labels

    task = project.get("task")
    if task not in set(TaskKind) or not TaskKind(task).is_preference:
        return None
    labels = [str(label) for label in project.get("labels") or []]
    tie = TIE in labels
    n = len(labels) - tie
    if n < 2 or labels != choice_labels(n, tie):
        raise ValueError(f"a {task} project's labels must be the choices '1'..'N' (then 'tie'), not {labels}")
    if project.get("responses_per_item") not in (None, 0, n) or bool(project.get("allow_ties", tie)) != tie:
        raise ValueError(f"the labels {labels} disagree with responses_per_item and allow_ties")
    return n, tie


def parse_preference_text(text: str) -> tuple[str, list[str]]:
    """(prompt, responses in canonical order) from a TEXT row made by `preference_text`."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"a preference TEXT row must be JSON {{prompt, responses}}: {exc}") from exc
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(
            row.get("responses"), list) or not all(isinstance(r, str) for r in row["responses"]):
        raise ValueError("a preference TEXT row must be JSON with a string 'prompt' and a list of string 'responses'")
    return row["prompt"], list(row["responses"])


def response_orders(n: int, count: int = 0) -> list[list[int]]:
    """The orders in which a judge is shown n responses (order[k] = the canonical response shown
    in position k): the cyclic rotations of the canonical order, then the reversed rotations,
    distinct, the first `count` of them (0: all). Rotations put each response in each position
    once, and so do the reversed ones: the first n (or all 2n) orders are balanced, and averaging
    over them cancels a judge's position bias. For n <= 3 they are all n! permutations, so
    permuting an item's responses permutes the averaged output."""
    if n < 1:
        raise ValueError("a judge needs at least one response")
    candidates = [[(shift + k) % n for k in range(n)] for shift in range(n)]
    candidates += [order[::-1] for order in candidates]
    orders: list[list[int]] = []
    for order in candidates:
        if order not in orders:
            orders.append(order)
    return orders[:count] if count > 0 else orders
