"""A stopping service stops serving before it closes what its handlers use: the gRPC server and the
web pages (their threads joined) first, then the producer and the store."""

from __future__ import annotations

import threading
from typing import cast

import grpc

from labelstream.common.auth import TokenDirectory
from labelstream.common.runtime import Runtime, shut_down
from labelstream.common.settings import Settings
from labelstream.monitor.dashboard_web import DashboardWeb
from tests.monitor.test_dashboard_data import FakeStore, small_store


class Recorder:
    """Stands in for the gRPC servers, the producer and the store: notes each call in `calls`."""

    def __init__(self, name: str, calls: list[str], page: DashboardWeb | None = None) -> None:
        self.name, self.calls, self.page = name, calls, page

    def stop(self, grace: float) -> threading.Event:
        self.calls.append(f"{self.name}.stop")
        done = threading.Event()
        done.set()
        return done

    def close(self) -> None:
        # a closing client sees whether the page is still serving requests that could use it
        alive = self.page is not None and self.page.http.thread.is_alive()
        self.calls.append(f"{self.name}.close" + (" while the page serves" if alive else ""))


def test_pages_are_stopped_and_joined_before_the_store_and_producer_close():
    calls: list[str] = []
    page = DashboardWeb(FakeStore(small_store(), {}), 0, tokens=TokenDirectory(None))
    runtime = Runtime("monitor", cast(Settings, None), cast(object, Recorder("store", calls, page)),  # type: ignore[arg-type]
                      cast(object, Recorder("producer", calls, page)))  # type: ignore[arg-type]
    runtime.serve_page(page)
    assert page.http.thread.is_alive()
    assert runtime.pages == [page]

    shut_down(runtime, cast(grpc.Server, Recorder("grpc", calls)), cast(grpc.Server, Recorder("probes", calls)))
    assert not page.http.thread.is_alive()
    assert calls == ["grpc.stop", "probes.stop", "producer.close", "store.close"]
