"""The routing decision: a plain function of a prediction and the project's spec."""

from __future__ import annotations

from labelstream.common.kafka import SCHEMA_VERSION
from labelstream.v1 import events_pb2


def route(prediction: events_pb2.Prediction, spec: events_pb2.ProjectSpec) -> events_pb2.RouteDecision:
    """Auto-accept when the top probability reaches the project's threshold."""
    probabilities = list(prediction.probabilities)
    if len(probabilities) != len(prediction.labels) or not probabilities:
        raise ValueError("prediction must carry one probability per label")
    top = max(range(len(probabilities)), key=probabilities.__getitem__)
    confidence = probabilities[top]
    threshold = spec.auto_accept_threshold
    auto = confidence >= threshold
    reason = (f"top probability {confidence:.3f} {'>=' if auto else '<'} threshold {threshold:.3f}")
    return events_pb2.RouteDecision(
        schema_version=SCHEMA_VERSION, project_id=prediction.project_id, item_id=prediction.item_id,
        route=events_pb2.ROUTE_AUTO if auto else events_pb2.ROUTE_HUMAN, label=prediction.labels[top],
        confidence=confidence, threshold=threshold, reason=reason, model_name=prediction.model_name,
        model_version=prediction.model_version, ingested_at_ms=prediction.ingested_at_ms)


def human_task(prediction: events_pb2.Prediction, decision: events_pb2.RouteDecision,
               spec: events_pb2.ProjectSpec, task_id: str) -> events_pb2.HumanTask:
    """Uncertain items first: priority is how far the model is from certainty."""
    return events_pb2.HumanTask(
        schema_version=SCHEMA_VERSION, project_id=prediction.project_id, item_id=prediction.item_id,
        task_id=task_id, text=prediction.text, labels=list(prediction.labels), overlap=spec.overlap,
        priority=1.0 - decision.confidence, model_label=decision.label, model_confidence=decision.confidence,
        ingested_at_ms=prediction.ingested_at_ms)
