"""python -m labelstream.inference: consumes items.accepted, calls Triton, publishes predictions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np

from labelstream.common.consumer import by_topic, per_record
from labelstream.common.producer import Outgoing
from labelstream.common.projects import QualityEventKind
from labelstream.common.records import Incoming, dead_letter, decode
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.telemetry import MESSAGES, log_fields
from labelstream.common.topics import Topics
from labelstream.inference import storage
from labelstream.inference.predict import predict_batch
from labelstream.inference.refit import HeadRefitter
from labelstream.inference.triton import TritonClassifier
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.inference")
_triton: TritonClassifier | None = None


def triton_client(runtime: Runtime) -> TritonClassifier:
    global _triton
    if _triton is None:
        settings = runtime.settings
        _triton = TritonClassifier(settings.triton_url, settings.triton_timeout_s, settings.triton_max_concurrency,
                                   settings.triton_retries)
    return _triton


def make_handler(runtime: Runtime):
    repository = runtime.settings.triton_model_repository
    refitter = HeadRefitter(runtime.store, Path(repository) if repository else None,
                            lambda model: triton_client(runtime).load(model))

    def handle_items(records: Sequence[Incoming]) -> list[Outgoing]:
        def on_invalid(record, error):
            MESSAGES.labels(runtime.name, record.topic, "dead_lettered").inc()
            log.warning("dead-lettered", extra=log_fields(reason=error.reason, detail=error.detail))
            return dead_letter(record, error, runtime.name)

        out = predict_batch(records, runtime.store, triton_client(runtime), on_invalid, refitter.head_version)
        MESSAGES.labels(runtime.name, Topics.ITEMS_ACCEPTED, "ok").inc(len(records))
        return out

    def handle_quality(record: Incoming) -> list[Outgoing]:
        event = decode(record, events_pb2.QualityEvent)
        verified = event.kind == QualityEventKind.VERIFIED_LABEL
        if verified and refitter.add_verified(event.project_id, event.item_id, event.label):
            spec = runtime.store.get_project(event.project_id)
            if spec is not None:
                refitter.refit_if_due(spec)
        return []

    return by_topic({Topics.ITEMS_ACCEPTED: handle_items,
                     Topics.QUALITY_EVENTS: per_record(handle_quality, runtime.name)})


class InferenceServicer(services_pb2_grpc.InferenceServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Predict(self, request: services_pb2.PredictRequest, context: grpc.ServicerContext):
        spec = self.runtime.store.get_project(request.project_id)
        if spec is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown_project: {request.project_id!r}")
        if not request.texts or any(not t.strip() for t in request.texts):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty_text: give one or more non-empty texts")
        output = triton_client(self.runtime).predict(spec.model, list(request.texts), spec, spec.model_version)
        return services_pb2.PredictResponse(predictions=[
            events_pb2.Prediction(schema_version=events_pb2.SCHEMA_VERSION_1, project_id=spec.project_id,
                                  labels=list(spec.labels), probabilities=[float(p) for p in row],
                                  model_name=output.model_name, model_version=output.model_version)
            for row in np.asarray(output.probabilities)])


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(runtime), server)


def watch_triton(runtime: Runtime) -> None:
    """NOT_SERVING and no fetching while Triton is unreachable; both resume when it returns."""
    state = {"ready": True}

    def check() -> None:
        ready = triton_client(runtime).ready()
        if ready != state["ready"]:
            log.warning("triton readiness changed", extra=log_fields(ready=ready, url=runtime.settings.triton_url))
            state["ready"] = ready
        if runtime.stop_event.is_set():
            return
        runtime.report_health("triton", ready)
        if ready:
            runtime.resume_consuming()
        else:  # backpressure: fetch nothing while nothing can be predicted
            runtime.pause_consuming("Triton is not ready")

    runtime.probes["triton"] = triton_client(runtime).ready
    runtime.start_background(check, 1.0, "triton-health")


def main() -> None:
    run_service("inference", [Topics.ITEMS_ACCEPTED, Topics.QUALITY_EVENTS], make_handler, register,
                on_start=watch_triton, collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
