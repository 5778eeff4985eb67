"""A simulated workforce (a synthetic project): workers that lease tasks through the
dispatcher's gRPC API and answer with a set accuracy against known gold, taking a set time."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from labelstream.v1 import services_pb2, services_pb2_grpc


@dataclass(frozen=True)
class WorkerProfile:
    accuracy: float = 0.85
    answer_ms: float = 30.0  # mean answer time (exponentially distributed)


@dataclass
class WorkforceCounters:
    answers: int = 0
    correct: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class SimulatedWorker(threading.Thread):
    def __init__(self, worker_id: str, address: str, project_id: str, gold_by_text: Mapping[str, str],
                 profile: WorkerProfile, stop: threading.Event, counters: WorkforceCounters, seed: int) -> None:
        super().__init__(name=worker_id, daemon=True)
        self.worker_id = worker_id
        self.address = address
        self.project_id = project_id
        self.gold_by_text = gold_by_text
        self.profile = profile
        self.stop_event = stop
        self.counters = counters
        self.rng = random.Random(seed)

    def choose(self, task: services_pb2.LeasedTask) -> str:
        gold = self.gold_by_text.get(task.text)
        labels = list(task.labels)
        if gold in labels and self.rng.random() < self.profile.accuracy:
            return gold
        wrong = [label for label in labels if label != gold] or labels
        return self.rng.choice(wrong)

    def run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            dispatcher = services_pb2_grpc.DispatcherServiceStub(channel)
            while not self.stop_event.is_set():
                try:
                    task = dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(
                        worker_id=self.worker_id, project_id=self.project_id), timeout=10)
                except grpc.RpcError as error:
                    # NOT_FOUND: nothing to do yet; UNAVAILABLE: the dispatcher is restarting.
                    if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise
                    self.stop_event.wait(0.2)
                    continue
                self.stop_event.wait(self.rng.expovariate(1000.0 / self.profile.answer_ms))
                label = self.choose(task)
                try:
                    dispatcher.SubmitAnswer(services_pb2.SubmitAnswerRequest(
                        worker_id=self.worker_id, task_id=task.task_id, label=label), timeout=10)
                except grpc.RpcError:
                    with self.counters.lock:
                        self.counters.refused += 1
                    continue
                with self.counters.lock:
                    self.counters.answers += 1
                    self.counters.correct += label == self.gold_by_text.get(task.text)


class Workforce:
    """N simulated workers running until stopped (use as a context manager)."""

    def __init__(self, address: str, project_id: str, gold_by_text: Mapping[str, str], count: int,
                 profile: WorkerProfile, seed: int = 0) -> None:
        self.stop_event = threading.Event()
        self.counters = WorkforceCounters()
        self.workers = [
            SimulatedWorker(f"sim-{seed}-{i:03d}", address, project_id, gold_by_text, profile, self.stop_event,
                            self.counters, seed * 1000 + i)
            for i in range(count)]

    def __enter__(self) -> Workforce:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + 15
        for worker in self.workers:
            worker.join(timeout=max(0.1, deadline - time.monotonic()))
