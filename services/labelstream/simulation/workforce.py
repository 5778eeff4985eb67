"""A simulated workforce: workers with profiles (accuracy, speed, spammers, position bias,
the longest- and shortest-option shortcuts, fatigue) that sign up through the admin API, then
lease and answer tasks through the dispatcher's gRPC API like real annotators, against known gold.

On a preference task the options are the responses as the dispatcher displayed them to this
worker: "first_option" picks the first one shown, "longest_option" the longest response, and an
honest worker finds the best response (known by its text) wherever it was shown.

On a multi-label task the answer is a set (`choose_set`): an honest worker ticks each label the
item holds with probability `sensitivity` and each other label with 1 - `specificity`, as the
raters of labelstream.simulation.multilabel_raters do; the shortcuts become the set shortcuts
(always the same set, every label, none)."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc

from labelstream.common.channels import GrpcTarget, open_channel
from labelstream.common.projects import TIE, label_set_key, parse_label_set, response_index
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
    # multi-label tasks: P(ticks a label the item holds), P(leaves out a label it does not hold)
    sensitivity: float = 0.85
    specificity: float = 0.97

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


def choose_set(profile: WorkerProfile, labels: list[str], gold: list[str] | None, rng: random.Random,
               none_allowed: bool = False, max_labels: int = 0) -> list[str]:
    """The set a worker of this profile ticks on a multi-label task whose gold set is `gold`
    (None: unknown to the simulation, answered as if it held no label). The shortcuts: "constant"
    and "first_option" always one set (the last, the first label), "longest_option" every label,
    "shortest_option" none of them, "random" each label by a coin. A set is kept within
    `max_labels` and is never empty unless `none_allowed` (the project names the empty set)."""
    held = set(gold or [])
    if profile.behaviour in ("constant", "first_option"):
        chosen = [labels[-1] if profile.behaviour == "constant" else labels[0]]
    elif profile.behaviour == "longest_option":
        chosen = list(labels)
    elif profile.behaviour == "shortest_option":
        chosen = []
    elif profile.behaviour == "random":
        chosen = [label for label in labels if rng.random() < 0.5]
    else:
        chosen = [label for label in labels
                  if rng.random() < (profile.sensitivity if label in held else 1.0 - profile.specificity)]
    if max_labels and len(chosen) > max_labels:
        chosen = rng.sample(chosen, max_labels)
    if not chosen and not none_allowed:  # must tick one: their best guess
        chosen = [rng.choice(sorted(held) or labels)]
    return sorted(chosen)


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


def sign_up(dispatcher: GrpcTarget, worker_ids: list[str], rotate: bool = True) -> dict[str, str]:
    """Worker accounts through the admin API (`dispatcher` carries the admin token; rotate: a new
    token for an existing id)."""
    with open_channel(dispatcher) as channel:
        admin = services_pb2_grpc.DispatcherServiceStub(channel)
        return {w: admin.CreateWorker(services_pb2.CreateWorkerRequest(worker_id=w, rotate_token=rotate),
                                      timeout=10).token for w in worker_ids}


class SimulatedWorker(threading.Thread):
    def __init__(self, worker_id: str, dispatcher: GrpcTarget, project_id: str, gold_by_text: Mapping[str, str],
                 profile: WorkerProfile, stop: threading.Event, counters: WorkforceCounters, seed: int) -> None:
        """`dispatcher` carries the worker's token."""
        super().__init__(name=worker_id, daemon=True)
        self.worker_id = worker_id
        self.dispatcher = dispatcher
        self.project_id = project_id
        self.gold_by_text = gold_by_text
        self.profile = profile
        self.stop_event = stop
        self.counters = counters
        self.rng = random.Random(seed)
        self.answered = 0

    def run(self) -> None:
        with open_channel(self.dispatcher) as channel:
            dispatcher = services_pb2_grpc.DispatcherServiceStub(channel)
            while not self.stop_event.is_set():
                try:
                    task = dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(project_id=self.project_id),
                                                timeout=10)
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
                if task.task == "multi_label":
                    known = None if gold is None else parse_label_set(gold)
                    label = label_set_key(choose_set(self.profile, list(task.labels), known, self.rng,
                                                     bool(task.none_label), task.max_labels))
                else:
                    label = choose_label(self.profile, list(task.labels), gold, self.answered, self.rng,
                                         list(task.responses) or None)
                try:
                    dispatcher.SubmitAnswer(services_pb2.SubmitAnswerRequest(task_id=task.task_id, label=label),
                                            timeout=10)
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

    def __init__(self, dispatcher: GrpcTarget, project_id: str, gold_by_text: Mapping[str, str],
                 count: int, profile: WorkerProfile, seed: int = 0, prefix: str = "sim") -> None:
        """`dispatcher` carries the admin token, which signs the workers up; each works with its own."""
        self.stop_event = threading.Event()
        self.counters = WorkforceCounters()
        ids = [f"{prefix}-{seed}-{i:03d}" for i in range(count)]
        tokens = sign_up(dispatcher, ids)
        self.workers = [
            SimulatedWorker(worker_id, dispatcher.with_token(tokens[worker_id]), project_id, gold_by_text, profile,
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
        if isinstance(item["gold_label"], list):  # a multi-label item's gold set, as its key
            known[text] = label_set_key(item["gold_label"])
            continue
        index = response_index(item["gold_label"]) if responses else None
        known[text] = responses[index] if index is not None else item["gold_label"]
    return known


def recorded_answer(canonical: list[str], label: str, shown: list[str]) -> str:
    """A recorded preference answer ("1".."N" over the canonical responses, or "tie") as the
    position its response has in the order this worker was shown."""
    if label == TIE:
        return TIE
    return str(shown.index(canonical[int(label) - 1]) + 1)


class ReplayWorkforce:
    """Real workers answering exactly as they did: `answers` maps each worker to their recorded
    answers, keyed by the item's responses (canonical order) and giving the canonical choice.
    Items name their annotators, so the dispatcher leases each one only to the workers who
    answered it; `threads` threads play the workers in turn, each leasing a worker's tasks until
    none is open, until every recorded answer is given. A worker leased an item they never
    answered (which the annotators rule forbids) is a failure, not a skip."""

    def __init__(self, dispatcher: GrpcTarget, project_id: str,
                 answers: Mapping[str, Mapping[tuple[str, ...], str]], threads: int = 8) -> None:
        """`dispatcher` carries the admin token, which signs the workers up."""
        self.dispatcher, self.project_id, self.threads = dispatcher.with_token(""), project_id, threads
        self.answers = answers
        self.tokens = sign_up(dispatcher, sorted(answers))
        self.remaining = {worker: len(recorded) for worker, recorded in answers.items()}
        self.counters = WorkforceCounters()
        self.unexpected: list[str] = []
        self._queue: deque[str] = deque(sorted(answers))
        self._lock = threading.Lock()

    def run(self, timeout_s: float, on_progress: Callable[[int, int], None] = lambda _done, _total: None) -> int:
        """Play every worker until all recorded answers are in or `timeout_s` passes; returns the
        answers given. Progress: (answers given, answers recorded)."""
        total = sum(self.remaining.values())
        deadline = time.monotonic() + timeout_s
        with open_channel(self.dispatcher) as channel:
            dispatcher = services_pb2_grpc.DispatcherServiceStub(channel)
            players = [threading.Thread(target=self._play, args=(dispatcher, deadline), daemon=True)
                       for _ in range(self.threads)]
            for player in players:
                player.start()
            while any(p.is_alive() for p in players):
                on_progress(self.counters.answers, total)
                time.sleep(0.5)
        on_progress(self.counters.answers, total)
        return self.counters.answers

    def _play(self, dispatcher: services_pb2_grpc.DispatcherServiceStub, deadline: float) -> None:
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queue:
                    return
                worker = self._queue.popleft()
            answered = self._answer_open_tasks(dispatcher, worker)
            with self._lock:
                if self.remaining[worker] > 0:
                    self._queue.append(worker)   # their other items are not open yet
            if not answered:   # nothing open for them: let the pipeline catch up rather than spin
                time.sleep(0.01 if len(self._queue) > self.threads else 0.2)

    def _answer_open_tasks(self, dispatcher: services_pb2_grpc.DispatcherServiceStub, worker: str) -> int:
        """Lease and answer this worker's open tasks; how many were answered."""
        answered = 0
        metadata = (("authorization", f"Bearer {self.tokens[worker]}"),)
        while self.remaining[worker] > 0:
            try:
                task = dispatcher.LeaseTask(services_pb2.LeaseTaskRequest(project_id=self.project_id),
                                            metadata=metadata, timeout=10)
            except grpc.RpcError as error:
                if error.code() in RETRY_CODES:
                    return answered
                raise
            shown = list(task.responses)
            canonical = next((key for key in self.answers[worker] if set(key) == set(shown)), None)
            if canonical is None:
                with self.counters.lock:
                    self.unexpected.append(f"{worker} was leased an item they never answered")
                dispatcher.SkipTask(services_pb2.SkipTaskRequest(task_id=task.task_id), metadata=metadata,
                                    timeout=10)
                continue
            label = recorded_answer(list(canonical), self.answers[worker][canonical], shown)
            try:
                dispatcher.SubmitAnswer(services_pb2.SubmitAnswerRequest(task_id=task.task_id, label=label),
                                        metadata=metadata, timeout=10)
            except grpc.RpcError:
                with self.counters.lock:
                    self.counters.refused += 1
                continue
            with self.counters.lock:
                self.counters.answers += 1
            self.remaining[worker] -= 1
            answered += 1
        return answered
