"""python -m labelstream.ingest: consumes items.raw, serves IngestService."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError, Message

from labelstream.common.consumer import per_record
from labelstream.common.dead_letters import DeadLetterReason, InvalidMessage
from labelstream.common.producer import Outgoing
from labelstream.common.projects import resolve, validate
from labelstream.common.records import Incoming
from labelstream.common.runtime import Runtime, run_service
from labelstream.common.telemetry import log_fields, tracer
from labelstream.common.topics import Topics
from labelstream.ingest import storage
from labelstream.ingest.acceptance import accept_item
from labelstream.ingest.owners import OwnerError, create_owner
from labelstream.ingest.validation import parse_raw_item, validate_item, validate_item_values
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

log = logging.getLogger("labelstream.ingest")


def make_handler(runtime: Runtime):
    def handle(record: Incoming) -> list[Outgoing]:
        with tracer().start_as_current_span("ingest.accept", context=record.trace_context) as span:
            item = parse_raw_item(record.value, record.header("content-type"), runtime.settings.max_record_bytes)
            span.set_attributes({"labelstream.project_id": item.project_id, "labelstream.item_id": item.item_id})
            validate_item_values(item)  # before the project_id reaches the store
            validate_item(item, runtime.store.get_project(item.project_id), runtime.settings.max_item_bytes)
            out, duplicate = accept_item(runtime.store, item)
            if duplicate:
                log.info("duplicate item", extra=log_fields(project_id=item.project_id, item_id=item.item_id))
            return out

    return per_record(handle, runtime.name)


SERVICE = "labelstream.v1.IngestService"


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not its message type (e.g. a string field that is not UTF-8)."""

    message_type: str
    error: str


def _lenient(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A request deserializer that never raises: gRPC answers a deserializer's exception with
    INTERNAL, and an undecodable request is the caller's error (INVALID_ARGUMENT)."""

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            return Undecodable(message_type.DESCRIPTOR.full_name, str(exc))

    return deserialize


def _reject_undecodable(request: object, context: grpc.ServicerContext) -> None:
    if isinstance(request, Undecodable):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{DeadLetterReason.BAD_PROTOBUF}: not a "
                      f"{request.message_type} ({request.error}); string fields must be UTF-8")


class IngestServicer(services_pb2_grpc.IngestServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def Submit(self, request: services_pb2.SubmitRequest, context: grpc.ServicerContext):
        _reject_undecodable(request, context)
        item = request.item
        with tracer().start_as_current_span("ingest.submit", attributes={
                "labelstream.project_id": item.project_id, "labelstream.item_id": item.item_id}):
            try:
                if item.schema_version not in (0, events_pb2.SCHEMA_VERSION_1):
                    raise InvalidMessage(DeadLetterReason.UNKNOWN_SCHEMA_VERSION,
                                         f"schema_version={item.schema_version}; this service reads "
                                         f"{events_pb2.SCHEMA_VERSION_1} (or 0: unset)")
                item.schema_version = events_pb2.SCHEMA_VERSION_1
                validate_item_values(item)  # before the project_id reaches the store
                validate_item(item, self.runtime.store.get_project(item.project_id),
                              self.runtime.settings.max_item_bytes)
            except InvalidMessage as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{error.reason}: {error.detail}")
            out, duplicate = accept_item(self.runtime.store, item)
            self.runtime.producer.publish(out)
        return services_pb2.SubmitResponse(item_id=item.item_id, duplicate=duplicate)

    def ApplyProject(self, request: services_pb2.ApplyProjectRequest, context: grpc.ServicerContext):
        _reject_undecodable(request, context)
        spec = resolve(request.project)  # stored resolved: no service applies a default of its own
        problems = validate(spec)
        if problems:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid project: " + "; ".join(problems))
        created = self.runtime.store.put_project(spec)
        log.info("project applied", extra=log_fields(project_id=spec.project_id, created=created))
        return services_pb2.ApplyProjectResponse(project_id=spec.project_id, created=created)

    def GetProject(self, request: services_pb2.GetProjectRequest, context: grpc.ServicerContext):
        _reject_undecodable(request, context)
        spec = self.runtime.store.get_project(request.project_id)
        if spec is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"project {request.project_id!r} does not exist")
        return spec

    def CreateProjectOwner(self, request: services_pb2.CreateProjectOwnerRequest, context: grpc.ServicerContext):
        _reject_undecodable(request, context)
        try:
            token = create_owner(self.runtime.store, request.project_id, request.owner_id, request.rotate_token)
        except OwnerError as error:
            context.abort(getattr(grpc.StatusCode, error.code), str(error))
        log.info("project owner token issued", extra=log_fields(
            project_id=request.project_id, owner_id=request.owner_id, rotated=request.rotate_token))
        return services_pb2.CreateProjectOwnerResponse(project_id=request.project_id, owner_id=request.owner_id,
                                                       token=token)


def register(runtime: Runtime, server: grpc.Server) -> None:
    """The generated add_IngestServiceServicer_to_server, with request deserializers that never raise."""
    servicer = IngestServicer(runtime)
    handlers = {
        "Submit": grpc.unary_unary_rpc_method_handler(
            servicer.Submit, request_deserializer=_lenient(services_pb2.SubmitRequest),
            response_serializer=services_pb2.SubmitResponse.SerializeToString),
        "ApplyProject": grpc.unary_unary_rpc_method_handler(
            servicer.ApplyProject, request_deserializer=_lenient(services_pb2.ApplyProjectRequest),
            response_serializer=services_pb2.ApplyProjectResponse.SerializeToString),
        "GetProject": grpc.unary_unary_rpc_method_handler(
            servicer.GetProject, request_deserializer=_lenient(services_pb2.GetProjectRequest),
            response_serializer=events_pb2.ProjectSpec.SerializeToString),
        "CreateProjectOwner": grpc.unary_unary_rpc_method_handler(
            servicer.CreateProjectOwner, request_deserializer=_lenient(services_pb2.CreateProjectOwnerRequest),
            response_serializer=services_pb2.CreateProjectOwnerResponse.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def main() -> None:
    run_service("ingest", [Topics.ITEMS_RAW], make_handler, register,
                collections=storage.COLLECTIONS)


if __name__ == "__main__":
    main()
