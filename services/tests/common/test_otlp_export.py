"""Spans leave over OTLP/gRPC when the standard variables name a collector: a receiver built from
the opentelemetry-proto service definitions gets them, with the service's name."""

from __future__ import annotations

from labelstream.common import telemetry
from labelstream.common.otlp_receiver import OtlpReceiver


def test_otlp_is_configured_by_the_standard_variables():
    assert not telemetry.otlp_configured({})
    assert telemetry.otlp_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert telemetry.otlp_configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})
    assert not telemetry.otlp_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                                          "OTEL_TRACES_EXPORTER": "none"})


def test_spans_reach_an_otlp_receiver_over_the_wire(monkeypatch):
    receiver = OtlpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    try:
        # instrument="none": the libraries of the test process stay as they are
        provider = telemetry.configure_tracing("unit", "", instrument="none")
        with provider.get_tracer("test").start_as_current_span("labelstream.test-span"):
            pass
        assert provider.force_flush(10_000)
        assert [(s["service"], s["name"]) for s in receiver.spans()] == [("labelstream-unit", "labelstream.test-span")]
        provider.shutdown()
    finally:
        receiver.stop()
