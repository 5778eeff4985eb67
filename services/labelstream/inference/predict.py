"""Turning a micro-batch of accepted items into predictions, each stored once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pymongo import UpdateOne

from labelstream.common.dead_letters import InvalidMessage
from labelstream.common.producer import Outgoing
from labelstream.common.projects import is_multi_label
from labelstream.common.records import Incoming, decode
from labelstream.common.store import Store, item_key
from labelstream.common.telemetry import now_ms, trace_headers, tracer
from labelstream.common.topics import SCHEMA_VERSION, Topics
from labelstream.inference.triton import TritonClassifier
from labelstream.models.contract import preference_text
from labelstream.v1 import events_pb2


def prediction_to_doc(prediction: events_pb2.Prediction) -> dict:
    return {
        "votes": [{"model_name": v.model_name, "model_version": v.model_version,
                   "probabilities": list(v.probabilities)} for v in prediction.votes],
        "project_id": prediction.project_id, "item_id": prediction.item_id, "labels": list(prediction.labels),
        "probabilities": list(prediction.probabilities), "model_name": prediction.model_name,
        "model_version": prediction.model_version, "ingested_at_ms": prediction.ingested_at_ms,
        "predicted_at_ms": prediction.predicted_at_ms, "text": prediction.text,
        "head_version": prediction.head_version,
        "responses": [{"text": r.text, "source": r.source} for r in prediction.responses],
        "annotators": list(prediction.annotators),
    }


def doc_to_prediction(doc: dict) -> events_pb2.Prediction:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "published", "votes", "responses")}
    prediction = events_pb2.Prediction(schema_version=SCHEMA_VERSION, **fields,
                                       responses=[events_pb2.Response(**r) for r in doc.get("responses", [])])
    for vote in doc.get("votes", []):
        prediction.votes.add(**vote)
    return prediction


def model_text(item: events_pb2.Item) -> str:
    """The TEXT row a model gets: the item's text, or a preference item's prompt and responses."""
    if item.responses:
        return preference_text(item.text, [r.text for r in item.responses])
    return item.text


def predict_batch(records: Sequence[Incoming], store: Store, triton: TritonClassifier, on_invalid,
                  head_version: Callable[[str, str, str], str] = lambda _model, _project, served: served,
                  ) -> list[Outgoing]:
    """Predict every valid item of the batch (one Triton call per project and chunk).

    Items predicted before (a replay after a crash) are not predicted again: the stored
    prediction is re-published instead, so the store never holds two predictions of one item.
    """
    out: list[Outgoing] = []
    by_project: dict[str, list[tuple[Incoming, events_pb2.Item]]] = defaultdict(list)
    for record in records:
        try:
            item = decode(record, events_pb2.Item)
            by_project[item.project_id].append((record, item))
        except InvalidMessage as error:
            out.append(on_invalid(record, error))
    for project_id, entries in by_project.items():
        spec = store.get_project(project_id)
        if spec is None:
            for record, item in entries:
                out.append(on_invalid(record, InvalidMessage(
                    "unknown_project", f"project {project_id!r} was deleted", project_id, item.item_id)))
            continue
        if spec.model_version and not triton.ready(spec.model, spec.model_version) and triton.ready():
            for record, item in entries:  # Triton is up but does not serve the pinned version
                out.append(on_invalid(record, InvalidMessage(
                    "model_version_unavailable", f"project {project_id!r} pins {spec.model} version "
                    f"{spec.model_version}, which Triton does not serve; unpin it or pin a served version",
                    project_id, item.item_id)))
            continue
        keys = [item_key(project_id, item.item_id) for _, item in entries]
        stored = {doc["_id"]: doc for doc in store.db.predictions.find({"_id": {"$in": keys}})}
        fresh = [(record, item) for record, item in entries if item_key(project_id, item.item_id) not in stored]
        predictions: dict[str, tuple[Incoming, events_pb2.Prediction]] = {}
        if fresh:
            texts = [model_text(item) for _, item in fresh]
            voters = list(spec.models) or [spec.model]
            outputs = [triton.predict(model, texts, spec, spec.model_version if model == spec.model else "")
                       for model in voters]
            mean = np.mean([o.probabilities for o in outputs], axis=0)
            # A multi_label model gives each label its own probability (they need not sum to 1):
            # normalising would take one label's evidence away from another's.
            totals = np.ones((len(mean), 1)) if is_multi_label(spec) else mean.sum(axis=1, keepdims=True)
            at = now_ms()
            writes = []
            for row, ((record, item), probs, total) in enumerate(zip(fresh, mean, totals, strict=True)):
                prediction = events_pb2.Prediction(
                    schema_version=SCHEMA_VERSION, project_id=project_id, item_id=item.item_id,
                    labels=list(spec.labels), probabilities=[float(p) for p in probs / total],
                    model_name="+".join(o.model_name for o in outputs),
                    model_version="+".join(o.model_version for o in outputs),
                    head_version="+".join(head_version(o.model_name, project_id, o.model_version) for o in outputs),
                    ingested_at_ms=item.ingested_at_ms, predicted_at_ms=at, text=item.text,
                    responses=item.responses, annotators=item.annotators)
                if len(outputs) > 1:
                    for output in outputs:
                        prediction.votes.add(model_name=output.model_name, model_version=output.model_version,
                                             probabilities=[float(p) for p in output.probabilities[row]])
                key = item_key(project_id, item.item_id)
                writes.append(UpdateOne({"_id": key}, {"$setOnInsert": {
                    **prediction_to_doc(prediction), "published": False}}, upsert=True))
                predictions[key] = (record, prediction)
            store.db.predictions.bulk_write(writes, ordered=False)
        group: list[Outgoing] = []
        for record, item in entries:
            key = item_key(project_id, item.item_id)
            if key in stored:
                if stored[key].get("published"):
                    continue
                prediction = doc_to_prediction(stored[key])
            else:
                prediction = predictions[key][1]
            with tracer().start_as_current_span("inference.predict", context=record.trace_context, attributes={
                    "labelstream.project_id": project_id, "labelstream.item_id": item.item_id,
                    "labelstream.model": f"{prediction.model_name}/{prediction.model_version}"}):
                headers = trace_headers()
            group.append(Outgoing(Topics.PREDICTIONS, key, prediction, headers))
        if group:  # callbacks run once every message of the batch is acknowledged: one write marks all
            group[-1].on_published = _marker(store, [o.key for o in group])
            out.extend(group)
    return out


def _marker(store: Store, keys: list[str]):
    def mark() -> None:
        store.db.predictions.update_many({"_id": {"$in": keys}}, {"$set": {"published": True}})
    return mark
