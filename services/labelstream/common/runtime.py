"""A service's process lifecycle: settings, logs, traces, metrics, store, producer, gRPC server
with health checking, consumer loop, and a graceful SIGTERM (stop fetching, finish the batch
in flight, commit, exit)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from labelstream.common.auth import AuthInterceptor, TokenDirectory
from labelstream.common.channels import server_credentials
from labelstream.common.consumer import AssignmentListener, BatchHandler, ConsumerLoop
from labelstream.common.outbox import Outbox
from labelstream.common.producer import EventProducer
from labelstream.common.settings import Settings, SettingsError
from labelstream.common.store import Collections, Store
from labelstream.common.telemetry import (
    configure_logging,
    configure_tracing,
    log_fields,
    start_metrics_server,
)

OUTBOX_SWEEP_SECONDS = 5.0


class Page(Protocol):
    """A web page served beside the gRPC API (labelstream.common.web.PageServer behind it)."""

    def start(self, stop_event: threading.Event) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Runtime:
    """Clients a service's handlers use; built once per process."""

    name: str
    settings: Settings
    store: Store
    producer: EventProducer
    stop_event: threading.Event = field(default_factory=threading.Event)
    health: health.HealthServicer = field(default_factory=lambda: health.HealthServicer())
    # Who a bearer token names (admin, service, owners, workers): the gRPC interceptor asks it, and
    # so may a service's own door (the annotator page).
    tokens: TokenDirectory | None = None

    loop: ConsumerLoop | None = None
    # Hears the partitions the consumer group gives this process (set by a service whose state
    # is owned per partition, before the loop starts).
    on_assigned: AssignmentListener | None = None
    # One instance of each part that a service's consumer, gRPC servicer and background jobs share.
    components: dict[str, Any] = field(default_factory=dict)
    # Whether each dependency the service needs answers now; the consumer loop asks these to tell
    # an outage (wait) from a record's own failure (dead-letter). The store's is always there.
    probes: dict[str, Callable[[], bool]] = field(default_factory=dict)
    # What is down now (an outage seen by the consumer loop, Triton not ready...): NOT_SERVING
    # while any is.
    unhealthy: set[str] = field(default_factory=set)
    # The web pages this process serves (`serve_page`): stopped, their threads joined, before the
    # store and producer their requests use are closed (`shut_down`).
    pages: list[Page] = field(default_factory=list)

    def component(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self.components:
            self.components[name] = build()
        return self.components[name]

    def outbox(self) -> Outbox:
        """This service's durable outbox, swept in the background (made on first use)."""
        def build() -> Outbox:
            box = Outbox(self.store, self.producer, self.name)
            box.ensure_indexes()
            self.start_background(box.sweep, OUTBOX_SWEEP_SECONDS, "outbox-sweep")
            return box
        return self.component("outbox", build)

    def pause_consuming(self, reason: str) -> None:
        if self.loop:
            self.loop.pause(reason)

    def resume_consuming(self) -> None:
        if self.loop:
            self.loop.resume()

    def set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        self.health.set("", status)
        self.health.set(f"labelstream.{self.name}", status)

    def report_health(self, part: str, healthy: bool) -> None:
        """`part` (a dependency, or the consumer loop) is healthy or not; the health service says
        SERVING only while every part is, and never again once shutting down."""
        if healthy:
            self.unhealthy.discard(part)
        else:
            self.unhealthy.add(part)
        if not self.stop_event.is_set():
            self.set_serving(not self.unhealthy)

    def dependencies_answer(self) -> bool:
        """Whether every dependency answers its probe now."""
        return all(probe() for probe in self.probes.values())

    def serve_page(self, page: Page) -> None:
        """Start serving `page` until shutdown (it also stops by itself once stop_event is set)."""
        page.start(self.stop_event)
        self.pages.append(page)

    def start_background(self, target: Callable[[], None], every_s: float, label: str) -> threading.Thread:
        """Run `target` every `every_s` seconds until shutdown; failures are logged, not fatal."""
        logger = logging.getLogger(f"labelstream.{self.name}")

        def loop() -> None:
            while not self.stop_event.wait(every_s):
                try:
                    target()
                except Exception:
                    logger.exception(f"{label} failed; retrying in {every_s}s")

        thread = threading.Thread(target=loop, name=label, daemon=True)
        thread.start()
        return thread


def grpc_server(settings: Settings, tokens: TokenDirectory) -> grpc.Server:
    """A gRPC server whose every call passes the access rules (labelstream.common.auth)."""
    return grpc.server(futures.ThreadPoolExecutor(max_workers=settings.grpc_threads),
                       interceptors=[AuthInterceptor(tokens)])


def bind(server: grpc.Server, settings: Settings) -> int:
    """Bind the gRPC port, with TLS when a server certificate is set; the port (0: not bound)."""
    address = f"{settings.grpc_bind_host}:{settings.grpc_port}"
    credentials = server_credentials(settings)
    return server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)


def health_server(servicer: health.HealthServicer, settings: Settings) -> grpc.Server | None:
    """The health service alone on LABELSTREAM_GRPC_HEALTH_PORT, plaintext (probes that speak no TLS);
    None when that port is 0. It says what the API port's health service says."""
    if not settings.grpc_health_port:
        return None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{settings.grpc_bind_host}:{settings.grpc_health_port}") == 0:
        raise SettingsError(f"cannot bind the gRPC health port {settings.grpc_health_port}; set "
                            "LABELSTREAM_GRPC_HEALTH_PORT to a free port, or 0")
    server.start()
    return server


def shut_down(runtime: Runtime, server: grpc.Server, probes: grpc.Server | None) -> None:
    """Stop serving, then close the clients: the gRPC servers (calls in flight finish) and the web
    pages (requests in flight finish, threads joined) go first, since their handlers use the
    producer and the store."""
    server.stop(grace=5).wait()
    for page in runtime.pages:
        page.stop()
    if probes:
        probes.stop(grace=1).wait()
    runtime.producer.close()
    runtime.store.close()


def run_service(
    name: str,
    topics: Sequence[str],
    make_handler: Callable[[Runtime], BatchHandler],
    register: Callable[[Runtime, grpc.Server], None],
    on_start: Callable[[Runtime], None] | None = None,
    *,
    collections: Collections,
) -> None:
    """Wire a service and run it until SIGTERM/SIGINT. Exits 2 on invalid settings. The service
    owns `collections` (it alone writes them) and creates their indexes."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"labelstream-{name}: {exc}", file=sys.stderr)  # noqa: T201 - logging is not set up yet
        sys.exit(2)
    logger = configure_logging(name, settings.log_level)
    logger.info("starting", extra=log_fields(service=name, settings=settings.redacted()))
    tracer_provider = configure_tracing(name, settings.trace_file, settings.otel_instrument)
    start_metrics_server(settings.metrics_port)

    store = Store(settings, app_name=f"labelstream-{name}")
    store.wait_ready()
    store.ensure_indexes(collections)
    producer = EventProducer(settings, name)
    runtime = Runtime(name, settings, store, producer,
                      tokens=TokenDirectory(store, settings.admin_token, settings.service_token))
    runtime.probes.update(store=store.ping, broker=producer.connected)

    server = grpc_server(settings, runtime.tokens)
    health_pb2_grpc.add_HealthServicer_to_server(runtime.health, server)
    register(runtime, server)
    try:
        bound = bind(server, settings)
    except ValueError as exc:
        logger.error(str(exc))
        sys.exit(2)
    if bound == 0:
        logger.error(f"cannot bind gRPC port {settings.grpc_port}; set LABELSTREAM_GRPC_PORT to a free port")
        sys.exit(2)
    server.start()
    try:
        probes = health_server(runtime.health, settings)
    except SettingsError as exc:
        logger.error(str(exc))
        sys.exit(2)

    handler = make_handler(runtime) if topics else None
    loop = ConsumerLoop(settings, name, topics, handler, producer, runtime.on_assigned,
                        probe=runtime.dependencies_answer,
                        on_health=lambda healthy: runtime.report_health("consumer", healthy)) if handler else None
    runtime.loop = loop

    def shutdown(signum: int, _frame: object) -> None:
        logger.info("shutting down", extra=log_fields(signal=signal.Signals(signum).name))
        runtime.set_serving(False)
        runtime.stop_event.set()
        if loop:
            loop.stop()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if on_start:
        on_start(runtime)
    runtime.set_serving(not runtime.unhealthy)
    logger.info("serving", extra=log_fields(grpc_port=settings.grpc_port, metrics_port=settings.metrics_port,
                                            grpc_tls=bool(settings.grpc_tls_cert_file),
                                            mutual_tls=bool(settings.grpc_tls_client_ca_file)))
    try:
        if loop:
            loop.run()
        else:
            runtime.stop_event.wait()
    finally:
        shut_down(runtime, server, probes)
        tracer_provider.shutdown()
        logger.info("stopped")
