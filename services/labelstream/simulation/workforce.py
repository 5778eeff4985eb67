"""A simulated workforce: workers with profiles (accuracy, speed, spammers, position bias,
the longest- and shortest-option shortcuts, fatigue) that sign up through the admin API, then
lease and answer tasks through the dispatcher's gRPC API like real annotators, against known gold.

On a preference task the options are the responses as the dispatcher displayed them to this
worker: "first_option" picks the first one shown, "longest_option" the longest response, and an
honest worker finds the best response (known by its text) wherever it was shown."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from labelstream.common.projects import TIE, response_index
from labelstream.v1 import services_pb2, services_pb2_grpc

BEHAVIOURS = ("honest", "random", "first_option", "longest_option", "shortest_option", "constant")
RETRY_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
               grpc.StatusCode.RESOURCE_EXHAUSTED)


@dataclass(frozen=True)
class WorkerProfile:
    accuracy: float = 0.85
    answer_ms: float = 30.0       # median answer time
    speed_sigma: float = 0.5      # spread of answer times (log-normal)
    behaviour: str = "honest"     # see BEHAVIOURS: how answers are chosen when not honest
    fatigue: float = 0.0          # accuracy lost per 100 answers

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {self.behaviour!r} is not one of {BEHAVIOURS}")
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError("accuracy must be between 0 and 1")


def choose_label(profile: WorkerProfile, labels: list[str], gold: str | None, answered: int,
                 rng: random.Random, option_texts: list[str] | None = None) -> str:
    """What a worker of this profile answers (plain function: the Snow replay uses it too).
    `option_texts` are what the options show, one per label in order (a preference task's
    displayed responses; labels past them, such as a tie, have none); by default the labels."""
    texts = option_texts if option_texts is not None else labels
    if profile.behaviour == "random":
        return rng.choice(labels)
    if profile.behaviour == "first_option":
        return labels[0]
    if profile.behaviour == "longest_option":
        return labels[max(range(len(texts)), key=lambda i: len(texts[i]))]
    if profile.behaviour == "shortest_option":
        return labels[min(range(len(texts)), key=lambda i: len(texts[i]))]
    if profile.behaviour == "constant":
        return labels[-1]
    accuracy = max(0.0, profile.accuracy - profile.fatigue * answered / 100)
    if gold in labels and rng.random() < accuracy:
        return gold
    wrong = [label for label in labels if label != gold] or labels
    return rng.choice(wrong)


def shown_gold(gold: str | None, shown_responses: list[str]) -> str | None:
    """The gold answer as this worker's task shows it. For a preference task the gold is the best
    response's text (or "tie"), found at whatever position it was displayed; else the label."""
    if not shown_responses or gold is None or gold == TIE:
        return gold
    return str(shown_responses.index(gold) + 1) if gold in shown_responses else None


def answer_seconds(profile: WorkerProfile, rng: random.Random) -> float:
    return profile.answer_ms / 1000 * math.exp(rng.gauss(0.0, profile.speed_sigma))


@dataclass
class WorkforceCounters:
    answers: int = 0
    correct: int = 0
    refused: int = 0
    blocked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sign_up(address: str, admin_token: str, worker_ids: list[str], rotate: bool = True) -> dict[str, str]:
    """Worker accounts through the admin API (rotate: a new token for an existing id)."""
    with grpc.insecure_channel(address) as channel:
        admin = services_pb2_grpc.DispatcherServiceStub(channel)
        metadata = (("authorization", f"Bearer {admin_token}"),)
        return {w: admin.CreateWorker(services_pb2.CreateWorkerRequest(worker_id=w, rotate_token=rotate),
                                      metadata=metadata, timeout=10).token for w in worker_ids}


class SimulatedWorker(threading.Thread):
    def __init__(self, worker_id: str, token: str, address: str, project_id: str, gold_by_text: Mapping[str, str],
                 profile: WorkerProfile, stop: threading.Event, counters: WorkforceCounters, seed: int) -> None:
        super().__init__(name=worker_id, daemon=True)
        self.worker_id = worker_id
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.address = address
        self.project_id = project_id
        self.gold_by_text = gold_by_text
        self.profile = profile
        self.stop_event = stop
        self.counters = counters
        self.rng = random.Random(seed)
        self.answered = 0

    def run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            dispatcher = services_pb2_grpc.DispatcherServiceStub(channel)
            while not self.stop_event.is_set():
                try:
                    task = dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(project_id=self.project_id),
                                                metadata=self.metadata, timeout=10)
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.PERMISSION_DENIED:  # blocked from the project
                        with self.counters.lock:
                            self.counters.blocked.add(self.worker_id)
                        return
                    # NOT_FOUND: nothing to do yet; UNAVAILABLE: the dispatcher is restarting.
                    if error.code() not in RETRY_CODES:
                        raise
                    self.stop_event.wait(0.2)
                    continue
                self.stop_event.wait(answer_seconds(self.profile, self.rng))
                gold = shown_gold(self.gold_by_text.get(task.text), list(task.responses))
                label = choose_label(self.profile, list(task.labels), gold, self.answered, self.rng,
                                     list(task.responses) or None)
                try:
                    dispatcher.SubmitAnswer(services_pb2.SubmitAnswerRequest(task_id=task.task_id, label=label),
                                            metadata=self.metadata, timeout=10)
                except grpc.RpcError:
                    with self.counters.lock:
                        self.counters.refused += 1
                    continue
                self.answered += 1
                with self.counters.lock:
                    self.counters.answers += 1
                    self.counters.correct += label == gold


class Workforce:
    """N simulated workers running until stopped (use as a context manager)."""

    def __init__(self, address: str, admin_token: str, project_id: str, gold_by_text: Mapping[str, str],
                 count: int, profile: WorkerProfile, seed: int = 0, prefix: str = "sim") -> None:
        self.stop_event = threading.Event()
        self.counters = WorkforceCounters()
        ids = [f"{prefix}-{seed}-{i:03d}" for i in range(count)]
        tokens = sign_up(address, admin_token, ids)
        self.workers = [
            SimulatedWorker(worker_id, tokens[worker_id], address, project_id, gold_by_text, profile,
                            self.stop_event, self.counters, seed * 1000 + i)
            for i, worker_id in enumerate(ids)]

    def __enter__(self) -> Workforce:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + 15
        for worker in self.workers:
            worker.join(timeout=max(0.1, deadline - time.monotonic()))


def gold_by_text(items: list[dict]) -> dict[str, str]:
    """What simulated workers know, from items with gold_label: a text's label, or for a
    preference item (with "responses") its prompt's best response text, or "tie"."""
    known = {}
    for item in items:
        if not item.get("gold_label"):
            continue
        responses = [r if isinstance(r, str) else r["text"] for r in item.get("responses", [])]
        text = item.get("text", item.get("prompt", ""))
        index = response_index(item["gold_label"]) if responses else None
        known[text] = responses[index] if index is not None else item["gold_label"]
    return known
