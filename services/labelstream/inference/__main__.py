"""python -m labelstream.inference: consumes items.accepted, calls Triton, publishes predictions."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
import numpy as np

from labelstream.common.kafka import Incoming, Outgoing, Topics, dead_letter
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.telemetry import MESSAGES, log_fields
from labelstream.inference.predict import predict_batch
from labelstream.inference.triton import TritonClassifier
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.inference")
_triton: TritonClassifier | None = None


def triton_client(runtime: Runtime) -> TritonClassifier:
    global _triton
    if _triton is None:
        _triton = TritonClassifier(runtime.settings.triton_url, runtime.settings.triton_timeout_s)
    return _triton


def make_handler(runtime: Runtime):
    def handle(records: Sequence[Incoming]) -> list[Outgoing]:
        def on_invalid(record, error):
            MESSAGES.labels(runtime.name, record.topic, "dead_lettered").inc()
            log.warning("dead-lettered", extra=log_fields(reason=error.reason, detail=error.detail))
            return dead_letter(record, error, runtime.name)

        out = predict_batch(records, runtime.store, triton_client(runtime), on_invalid)
        MESSAGES.labels(runtime.name, Topics.ITEMS_ACCEPTED, "ok").inc(len(records))
        return out

    return handle


class InferenceServicer(services_pb2_grpc.InferenceServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Predict(self, request: services_pb2.PredictRequest, context: grpc.ServicerContext):
        spec = self.runtime.store.get_project(request.project_id)
        if spec is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown_project: {request.project_id!r}")
        if not request.texts or any(not t.strip() for t in request.texts):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty_text: give one or more non-empty texts")
        output = triton_client(self.runtime).predict(spec.model, list(request.texts), spec)
        return services_pb2.PredictResponse(predictions=[
            events_pb2.Prediction(schema_version=events_pb2.SCHEMA_VERSION_1, project_id=spec.project_id,
                                  labels=list(spec.labels), probabilities=[float(p) for p in row],
                                  model_name=output.model_name, model_version=output.model_version)
            for row in np.asarray(output.probabilities)])


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(runtime), server)


def watch_triton(runtime: Runtime) -> None:
    """NOT_SERVING while Triton is unreachable; SERVING again when it returns."""
    state = {"ready": True}

    def check() -> None:
        ready = triton_client(runtime).ready()
        if ready != state["ready"]:
            log.warning("triton readiness changed", extra=log_fields(ready=ready, url=runtime.settings.triton_url))
            state["ready"] = ready
        if not runtime.stop_event.is_set():
            runtime.set_serving(ready)

    runtime.start_background(check, 2.0, "triton-health")


def main() -> None:
    run_service("inference", [Topics.ITEMS_ACCEPTED], make_handler, register, on_start=watch_triton)


if __name__ == "__main__":
    main()
