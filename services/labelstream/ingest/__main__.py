"""python -m labelstream.ingest: consumes items.raw, serves IngestService."""

from __future__ import annotations

import logging

import grpc

from labelstream.common.kafka import Incoming, InvalidMessage, Outgoing, Topics, per_record
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.telemetry import log_fields, tracer
from labelstream.ingest.acceptance import accept_item
from labelstream.ingest.validation import parse_raw_item, validate_item, validate_project
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.ingest")


def make_handler(runtime: Runtime):
    def handle(record: Incoming) -> list[Outgoing]:
        with tracer().start_as_current_span("ingest.accept", context=record.trace_context) as span:
            item = parse_raw_item(record.value, record.header("content-type"))
            span.set_attributes({"labelstream.project_id": item.project_id, "labelstream.item_id": item.item_id})
            validate_item(item, runtime.store.get_project(item.project_id), runtime.settings.max_item_bytes)
            out, duplicate = accept_item(runtime.store, item)
            if duplicate:
                log.info("duplicate item", extra=log_fields(project_id=item.project_id, item_id=item.item_id))
            return out

    return per_record(handle, runtime.name)


class IngestServicer(services_pb2_grpc.IngestServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Submit(self, request: services_pb2.SubmitRequest, context: grpc.ServicerContext):
        item = request.item
        with tracer().start_as_current_span("ingest.submit", attributes={
                "labelstream.project_id": item.project_id, "labelstream.item_id": item.item_id}):
            try:
                if item.schema_version not in (0, events_pb2.SCHEMA_VERSION_1):
                    raise InvalidMessage("unknown_schema_version", f"schema_version={item.schema_version}")
                item.schema_version = events_pb2.SCHEMA_VERSION_1
                validate_item(item, self.runtime.store.get_project(item.project_id),
                              self.runtime.settings.max_item_bytes)
            except InvalidMessage as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{error.reason}: {error.detail}")
            out, duplicate = accept_item(self.runtime.store, item)
            self.runtime.producer.publish(out)
        return services_pb2.SubmitResponse(item_id=item.item_id, duplicate=duplicate)

    def ApplyProject(self, request: services_pb2.ApplyProjectRequest, context: grpc.ServicerContext):
        spec = request.project
        spec.schema_version = events_pb2.SCHEMA_VERSION_1
        problems = validate_project(spec)
        if problems:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid project: " + "; ".join(problems))
        created = self.runtime.store.put_project(spec)
        log.info("project applied", extra=log_fields(project_id=spec.project_id, created=created))
        return services_pb2.ApplyProjectResponse(project_id=spec.project_id, created=created)

    def GetProject(self, request: services_pb2.GetProjectRequest, context: grpc.ServicerContext):
        spec = self.runtime.store.get_project(request.project_id)
        if spec is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"project {request.project_id!r} does not exist")
        return spec


def register(runtime: Runtime, server: grpc.Server) -> None:
    services_pb2_grpc.add_IngestServiceServicer_to_server(IngestServicer(runtime), server)


def main() -> None:
    run_service("ingest", [Topics.ITEMS_RAW], make_handler, register)


if __name__ == "__main__":
    main()
