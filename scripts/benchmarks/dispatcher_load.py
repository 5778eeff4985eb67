"""Load on the dispatcher: lease+submit pairs per second and their latency with many concurrent workers.

Starts a local stack on free ports (real store, real broker), applies a project, publishes --backlog
tasks to tasks.human (as the router does; the dispatcher takes them into its pool) and keeps the
backlog there while the load runs (one new task per --overlap answers, as a steady stream of items
would), signs --workers accounts up through the admin API, then runs the workers as grpc.aio
coroutines in --processes client processes (one event loop each, one connection per worker unless
--connections says otherwise). Each worker loops LeaseTask -> think -> SubmitAnswer; --think-ms takes
one or more think times and each gets a run of its own on a fresh stack (default: 0, a closed loop
that finds the most pairs/s; 2000, 1,000 workers each answering about every 2 s: the 500 pairs/s
the goal is about, where its p99 can be judged; 4000 and 8000, lighter loads, to show the load up
to which p99 stays low). The first --warmup seconds are not counted; over
the next --seconds it measures pairs/s, p50/p95/p99 latency of the pair (lease + submit, without
think time) and of each call, errors by status code, and the CPU split between the client, the
stack's processes and anything else on the machine (from /proc).

Then, in this process, with the dispatcher stopped and the store idle, it runs the dispatcher's own
request code (Workbench, TaskPool, the servicer's leased_task) for a few hundred pairs with a
pymongo command listener, to count the store round-trips of one pair and the time spent on them.

While it measures only the dispatcher, the store and the broker run (the other services are
stopped: on 2 cores they would take CPU the dispatcher needs); --full-stack keeps them all. The
dispatcher's per-worker rate limit (LABELSTREAM_WORKER_REQUESTS_PER_MINUTE) is raised for the run
so that the limiter does not decide the figures.

Writes reports/benchmarks/dispatcher_load.json (one entry in "runs" per think time), a plot of pair
latency against pairs/s (dispatcher_load.png beside it) and prints a table per run.
Usage: python scripts/benchmarks/dispatcher_load.py [--workers 1000] [--processes 4] [--seconds 30]
                                                    [--think-ms 0 2000 4000 8000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import random
import signal
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families
from pymongo import monitoring
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelstream.cli.client import publish_human_tasks
from labelstream.cli.projects import load_items
from labelstream.cli.stack import REPO_ROOT, SERVICES, LocalStack, StackState, free_port_block
from labelstream.common.channels import GrpcTarget
from labelstream.common.producer import EventProducer, Outgoing
from labelstream.common.projects import resolve
from labelstream.common.settings import Settings
from labelstream.common.store import Store
from labelstream.common.topics import Topics
from labelstream.dispatcher.pool import TaskPool
from labelstream.simulation.workforce import sign_up
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

OUT = REPO_ROOT / "reports" / "benchmarks" / "dispatcher_load.json"
TEXTS = REPO_ROOT / "deploy" / "examples" / "sst2" / "pool.jsonl"
GOAL_PAIRS_PER_S = 500.0
GOAL_P99_MS = 50.0
PROJECT = "bench-dispatch"
LABELS = ["negative", "positive"]
NO_RATE_LIMIT = "1000000"       # per worker and minute: far above what one worker can send here
RETRY_BACKOFF_S = 0.05          # after a refused lease, so that an empty pool is not polled in a spin
GO_TIMEOUT_S = 300.0            # a client process gives up if the parent never says go (it died)
FEEDER_EVERY_S = 0.2
IDLE_CPU_SHARE = 0.05           # the store counts as idle below this share of a core


# -- client processes ------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    """Times on the monotonic clock, which on Linux is one clock for all processes."""
    start: float
    measure_from: float
    end: float

    def counts(self, at: float) -> bool:
        return self.measure_from <= at < self.end


class Recorder:
    """One client process's figures; plain lists and dicts so they cross the process boundary."""

    def __init__(self, schedule: Schedule, progress: Any, index: int) -> None:
        self.schedule = schedule
        self.progress = progress
        self.index = index
        self.pair_ms: list[float] = []
        self.lease_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.errors: Counter[str] = Counter()       # in the measured window
        self.errors_all: Counter[str] = Counter()   # warm-up included

    def pair(self, started: float, leased: float, submitting: float, done: float) -> None:
        self.progress[self.index] += 1
        lease_ms, submit_ms = (leased - started) * 1000, (done - submitting) * 1000
        if self.schedule.counts(leased):
            self.lease_ms.append(lease_ms)
        if self.schedule.counts(done):
            self.submit_ms.append(submit_ms)
            self.pair_ms.append(lease_ms + submit_ms)  # think time is the worker's, not the service's

    def error(self, call: str, error: grpc.aio.AioRpcError) -> None:
        key = f"{call} {error.code().name}"
        self.errors_all[key] += 1
        if self.schedule.counts(time.monotonic()):
            self.errors[key] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"pair_ms": self.pair_ms, "lease_ms": self.lease_ms, "submit_ms": self.submit_ms,
                "errors": dict(self.errors), "errors_all": dict(self.errors_all)}


async def simulate_worker(stub: services_pb2_grpc.DispatcherServiceStub, token: str, schedule: Schedule,
                          recorder: Recorder, think_s: float, timeout_s: float, delay_s: float) -> None:
    metadata = (("authorization", f"Bearer {token}"),)
    lease_request = services_pb2.LeaseTaskRequest(project_id=PROJECT)
    await asyncio.sleep(delay_s)
    while time.monotonic() < schedule.end:
        started = time.monotonic()
        try:
            task = await stub.LeaseTask(lease_request, metadata=metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            recorder.error("LeaseTask", error)
            await asyncio.sleep(RETRY_BACKOFF_S)
            continue
        leased = time.monotonic()
        if think_s:
            await asyncio.sleep(think_s)
        submitting = time.monotonic()
        label = task.labels[len(task.text) % len(task.labels)]  # the same answer from everyone: no extra votes
        try:
            await stub.SubmitAnswer(services_pb2.SubmitAnswerRequest(task_id=task.task_id, label=label),
                                    metadata=metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            recorder.error("SubmitAnswer", error)
            continue
        recorder.pair(started, leased, submitting, time.monotonic())


def open_channels(address: str, count: int) -> list[grpc.aio.Channel]:
    # A local subchannel pool per channel: otherwise channels to one address share one connection.
    return [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(count)]


async def run_client(index: int, tokens: list[str], address: str, connections: int, think_s: float,
                     timeout_s: float, shared: dict[str, Any]) -> dict[str, Any]:
    channels = open_channels(address, connections or len(tokens))
    try:
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 60) for c in channels))
        shared["ready"].put(index)
        if not await asyncio.to_thread(shared["go"].wait, GO_TIMEOUT_S):
            return {}
        schedule = Schedule(*shared["schedule"])
        recorder = Recorder(schedule, shared["progress"], index)
        stubs = [services_pb2_grpc.DispatcherServiceStub(c) for c in channels]
        # Starts spread over half the warm-up: workers that all start at once stay in step (a wave of
        # leases, then a wave of submits), and a window would count whole waves, not a rate.
        rng = random.Random(index)
        ramp_s = (schedule.measure_from - schedule.start) / 2
        await asyncio.gather(*(simulate_worker(stubs[i % len(stubs)], token, schedule, recorder, think_s, timeout_s,
                                               rng.uniform(0, ramp_s))
                               for i, token in enumerate(tokens)))
        return recorder.as_dict()
    finally:
        await asyncio.gather(*(c.close() for c in channels))


def client_process(index: int, tokens: list[str], address: str, connections: int, think_s: float,
                   timeout_s: float, shared: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops this process
    os.setpgid(0, 0)  # a process group of its own: the load is apart from the benchmark and the stack
    result = asyncio.run(run_client(index, tokens, address, connections, think_s, timeout_s, shared))
    shared["results"].put(result)


# -- CPU accounting from /proc ---------------------------------------------------------------

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()  # the command name may contain spaces
    except (OSError, IndexError):
        return None


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) * TICK_S  # utime + stime, all threads


def cpu_by_session() -> dict[int, float]:
    """CPU seconds per session id: each stack part runs in its own session, children included."""
    sessions: Counter[int] = Counter()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))):
            sessions[int(fields[3])] += _cpu_s(fields)
    return dict(sessions)


def machine_busy_s() -> float:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) * TICK_S


def cpu_snapshot(stack_pids: dict[str, int], client_pids: list[int]) -> dict[str, float]:
    sessions = cpu_by_session()
    snapshot = {name: sessions.get(pid, 0.0) for name, pid in stack_pids.items()}
    snapshot["load clients"] = sum(_cpu_s(f) for pid in client_pids if (f := _stat_fields(pid)))
    snapshot["benchmark parent"] = _cpu_s(_stat_fields(os.getpid()) or ["0"] * 13)
    snapshot["machine busy"] = machine_busy_s()
    return snapshot


def cpu_split(before: dict[str, float], after: dict[str, float], window_s: float) -> dict[str, float]:
    """Cores used over the window by each part, and by everything else on the machine."""
    used = {name: (after[name] - before.get(name, 0.0)) / window_s for name in after}
    busy = used.pop("machine busy")
    used["everything else"] = max(0.0, busy - sum(used.values()))
    used["machine busy"] = busy
    return {name: round(cores, 3) for name, cores in used.items()}


# -- the load run ----------------------------------------------------------------------------

def chunks(items: list[str], parts: int) -> list[list[str]]:
    return [items[i::parts] for i in range(parts) if items[i::parts]]


def collect(q: Any, processes: list[Any], count: int, timeout_s: float) -> list[Any]:
    """`count` messages from q; fails fast when a client process died instead of waiting out the timeout."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        try:
            out.append(q.get(timeout=1.0))
        except queue.Empty:
            if all(not p.is_alive() for p in processes) or time.monotonic() > deadline:
                raise RuntimeError(f"only {len(out)} of {count} client processes answered; "
                                   f"exit codes {[p.exitcode for p in processes]}") from None
    return out


def watch(schedule: Schedule, progress: Any, sample: Callable[[], dict[str, float]]
          ) -> tuple[dict[str, float], dict[str, float]]:
    """Show progress until the end of the window; CPU samples at its start and its end."""
    before: dict[str, float] | None = None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("warm-up", total=schedule.end - schedule.start, rate="")
        last_pairs, last_at = 0, time.monotonic()
        while (now := time.monotonic()) < schedule.end:
            if before is None and now >= schedule.measure_from:
                before = sample()
                bar.update(task, description="measuring")
            next_mark = schedule.measure_from if before is None else schedule.end
            time.sleep(max(0.0, min(0.5, next_mark - now)))
            pairs, at = sum(progress), time.monotonic()
            rate = (pairs - last_pairs) / max(at - last_at, 1e-6)
            bar.update(task, completed=at - schedule.start, rate=f"{pairs} pairs, {rate:.0f}/s")
            last_pairs, last_at = pairs, at
    return before or sample(), sample()


def run_load(address: str, tokens: list[str], stack_pids: dict[str, int], options: argparse.Namespace,
             start_feeder: Callable[[Any], Feeder]) -> tuple[list[dict[str, Any]], dict[str, float], int]:
    context = mp.get_context("spawn")  # a forked child would inherit this process's gRPC and pymongo threads
    parts = chunks(tokens, options.processes)
    shared = {"ready": context.Queue(), "results": context.Queue(), "go": context.Event(),
              "schedule": context.Array("d", 3, lock=False), "progress": context.Array("q", len(parts), lock=False)}
    processes = [context.Process(target=client_process, daemon=True, name=f"load-client-{i}",
                                 args=(i, part, address, options.connections, options.think_ms / 1000,
                                       options.timeout, shared))
                 for i, part in enumerate(parts)]
    feeder: Feeder | None = None
    try:
        for process in processes:
            process.start()
        collect(shared["ready"], processes, len(processes), 180)
        start = time.monotonic() + 0.2
        schedule = Schedule(start, start + options.warmup, start + options.warmup + options.seconds)
        shared["schedule"][:] = [schedule.start, schedule.measure_from, schedule.end]
        shared["go"].set()
        feeder = start_feeder(shared["progress"])
        client_pids = [p.pid for p in processes if p.pid]
        before, after = watch(schedule, shared["progress"], lambda: cpu_snapshot(stack_pids, client_pids))
        results = collect(shared["results"], processes, len(processes), options.timeout + 60)
        for process in processes:
            process.join(10)
        feeder.stop()
        return results, cpu_split(before, after, options.seconds), feeder.added
    finally:
        if feeder is not None:
            feeder.stop()
        stop_clients(processes)


def stop_clients(processes: list[Any]) -> None:
    started = [p for p in processes if p.pid is not None]  # a failed start leaves the rest unstarted
    for process in started:
        if process.is_alive():
            process.terminate()
    for process in started:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)


def wait_idle(pid: int, timeout_s: float = 60.0) -> None:
    """Until the process (its session) uses less than IDLE_CPU_SHARE of a core: requests the
    stopped dispatcher left queued in the store must not count in the round-trip profile."""
    deadline = time.monotonic() + timeout_s
    last = cpu_by_session().get(pid, 0.0)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_by_session().get(pid, 0.0)
        if now - last < IDLE_CPU_SHARE * 0.5:
            return
        last = now


# -- the pool and the workers ----------------------------------------------------------------

def project_spec(project_id: str, overlap: int) -> events_pb2.ProjectSpec:
    # No WorkerPolicy: workers are admitted at once and get no gold, so every lease is a real task.
    return events_pb2.ProjectSpec(schema_version=1, project_id=project_id, name=project_id, task="single_label",
                                  labels=LABELS, instructions="Is the sentence positive or negative?",
                                  overlap=overlap, max_overlap=overlap, pay_per_answer=0.05)


def human_task(project_id: str, index: int, text: str, overlap: int, rng: random.Random) -> events_pb2.HumanTask:
    item_id = f"item-{index:06d}"
    return events_pb2.HumanTask(schema_version=1, project_id=project_id, item_id=item_id,
                                task_id=f"{project_id}:{item_id}", text=text, labels=LABELS, overlap=overlap,
                                priority=rng.random(), ingested_at_ms=int(time.time() * 1000))


def backlog(first_index: int, count: int, overlap: int, texts: list[str]) -> list[events_pb2.HumanTask]:
    rng = random.Random(first_index)
    return [human_task(PROJECT, i, texts[i % len(texts)], overlap, rng)
            for i in range(first_index, first_index + count)]


def preload(state: StackState, store: Store, tasks: list[events_pb2.HumanTask], label: str) -> None:
    """Publish the tasks to tasks.human (as the router does) and wait until the dispatcher has
    taken them all into its pool (they are in the store first)."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        progress = bar.add_task(label, total=len(tasks))
        before = store.db.tasks.count_documents({"project_id": PROJECT})
        publish_human_tasks(state.kafka_bootstrap, tasks)  # one producer for them all
        deadline = time.monotonic() + GO_TIMEOUT_S
        while (taken := store.db.tasks.count_documents({"project_id": PROJECT}) - before) < len(tasks):
            bar.update(progress, completed=taken)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dispatcher took {taken} of {len(tasks)} tasks in {GO_TIMEOUT_S:.0f} s; "
                                   "see its log in the stack's run directory")
            time.sleep(0.5)
        bar.update(progress, completed=len(tasks))


class Feeder(threading.Thread):
    """Keeps the backlog level: one new task per `overlap` answered pairs, published to
    tasks.human. How many tasks are open decides what picking one costs, so a pool that
    drained (or a huge preload) would measure a different dispatcher than a steady stream does."""

    def __init__(self, state: StackState, overlap: int, texts: list[str], first_index: int, progress: Any) -> None:
        super().__init__(name="backlog-feeder", daemon=True)
        self.producer = EventProducer(Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": state.kafka_bootstrap}),
                                      "benchmark")
        self.overlap = overlap
        self.texts = texts
        self.first_index = self.next_index = first_index
        self.progress = progress
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(FEEDER_EVERY_S):
            due = sum(self.progress) // self.overlap - self.added
            if due > 0:
                batch = backlog(self.next_index, due, self.overlap, self.texts)
                self.next_index += due
                self.producer.publish(Outgoing(Topics.TASKS_HUMAN, task.task_id, task) for task in batch)

    @property
    def added(self) -> int:
        return self.next_index - self.first_index

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
        self.producer.close()


def sign_up_workers(dispatcher: GrpcTarget, count: int) -> list[str]:
    ids = [f"bench-w{i:05d}" for i in range(count)]
    tokens: list[str] = []
    with Progress(TextColumn("sign-up"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        progress = bar.add_task("sign-up", total=count)
        for start in range(0, count, 100):
            part = ids[start:start + 100]
            signed = sign_up(dispatcher, part)
            tokens.extend(signed[w] for w in part)
            bar.advance(progress, len(part))
    return tokens


# -- store round-trips of one pair -----------------------------------------------------------

class StoreCommands(monitoring.CommandListener):
    """Store round-trips by phase of a pair and command, their client-side time, and documents read."""

    def __init__(self) -> None:
        self.phase = ""
        self.pending: dict[int, tuple[str, str]] = {}
        self.count: Counter[tuple[str, str]] = Counter()
        self.docs: Counter[tuple[str, str]] = Counter()
        self.micros: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.phase:
            name = event.command_name
            self.pending[event.request_id] = (self.phase, f"{name} {event.command.get(name)}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        key = self._finish(event)
        if key and isinstance(event.reply.get("cursor"), dict):
            self.docs[key] += len(event.reply["cursor"].get("firstBatch", []))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event)

    def _finish(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent
                ) -> tuple[str, str] | None:
        key = self.pending.pop(event.request_id, None)
        if key:
            self.count[key] += 1
            self.micros[key] += event.duration_micros
        return key


@contextmanager
def phase(listener: StoreCommands, name: str) -> Iterator[None]:
    listener.phase = name
    try:
        yield
    finally:
        listener.phase = ""


def profile_store_ops(state: StackState, tokens: list[str], overlap: int, pairs: int,
                      texts: list[str], first_index: int) -> dict[str, Any]:
    """The servicer's request code for `pairs` sequential pairs, in this process, with every store
    command counted: what one pair costs in round-trips and store time when nothing else runs.
    It leases from the pool the load left (its size decides what a lease's query costs), topped up
    so that it cannot run dry."""
    from labelstream.dispatcher.__main__ import leased_task  # the servicer's own LeaseTask body
    from labelstream.dispatcher.workbench import Workbench

    listener = StoreCommands()
    monitoring.register(listener)  # applies to clients created from here on
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": state.mongodb_uri}))
    try:
        workers = tokens[:10]
        pool = TaskPool(store, Settings.from_env({}).lease_seconds)  # this process owns every partition
        pool.load()
        pool.add_many(backlog(first_index, math.ceil((pairs + len(workers)) / overlap) + 10, overlap, texts))
        open_tasks = pool.open_tasks(PROJECT)
        workbench = Workbench(store, pool, int(NO_RATE_LIMIT))

        def one_pair(token: str, counted: bool) -> float:
            started = time.perf_counter()
            with phase(listener, "LeaseTask" if counted else ""):
                worker = workbench.accounts.authenticate(token)
                task = leased_task(workbench, worker, PROJECT)
            with phase(listener, "SubmitAnswer" if counted else ""):
                worker = workbench.accounts.authenticate(token)
                outcome = workbench.answer(worker, task.task_id, task.labels[0])
            elapsed = time.perf_counter() - started
            with phase(listener, "publisher (off the request path)" if counted else ""):
                workbench.pool.mark_published(outcome.response.task_id, worker)
            return elapsed

        for token in workers:  # first pair per worker: token look-up and a new worker record, not steady state
            one_pair(token, counted=False)
        elapsed = [one_pair(workers[i % len(workers)], counted=True) for i in range(pairs)]
    finally:
        store.close()
    return {"open_tasks_in_pool": open_tasks, **ops_report(listener, elapsed)}


def ops_report(listener: StoreCommands, elapsed: list[float]) -> dict[str, Any]:
    pairs = len(elapsed)
    by_phase: dict[str, dict[str, Any]] = {}
    for (name, command), count in sorted(listener.count.items()):
        entry = by_phase.setdefault(name, {"round_trips_per_pair": 0.0, "commands_per_pair": {}})
        entry["commands_per_pair"][command] = round(count / pairs, 2)
        entry["round_trips_per_pair"] = round(entry["round_trips_per_pair"] + count / pairs, 2)
        if listener.docs[(name, command)]:
            entry.setdefault("documents_read_per_pair", {})[command] = round(listener.docs[(name, command)] / pairs, 1)
    for (name, command), micros in sorted(listener.micros.items()):
        entry = by_phase[name]
        entry.setdefault("store_wait_ms_per_pair_by_command", {})[command] = round(micros / 1000 / pairs, 3)
        entry["store_wait_ms_per_pair"] = round(entry.get("store_wait_ms_per_pair", 0.0) + micros / 1000 / pairs, 3)
    request_path = [p for p in by_phase if not p.startswith("publisher")]
    return {"pairs": pairs, "sequential_pair_ms_p50": round(percentile(sorted(elapsed), 50) * 1000, 3),
            "sequential_pair_ms_mean": round(sum(elapsed) / pairs * 1000, 3),
            "request_path_round_trips_per_pair": round(sum(by_phase[p]["round_trips_per_pair"]
                                                           for p in request_path), 2),
            "request_path_store_wait_ms_per_pair": round(sum(by_phase[p]["store_wait_ms_per_pair"]
                                                             for p in request_path), 3),
            "by_phase": by_phase}


# -- figures and report ----------------------------------------------------------------------

def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {"count": len(ordered), "mean": round(sum(ordered) / len(ordered), 2),
            **{f"p{q}": round(percentile(ordered, q), 2) for q in (50, 95, 99)}, "max": round(ordered[-1], 2)}


def merge(results: list[dict[str, Any]], seconds: float, workers: int) -> dict[str, Any]:
    lists = {key: [v for r in results for v in r.get(key, [])] for key in ("pair_ms", "lease_ms", "submit_ms")}
    errors, errors_all = Counter(), Counter()
    for r in results:
        errors.update(r.get("errors", {}))
        errors_all.update(r.get("errors_all", {}))
    pairs = len(lists["pair_ms"])
    # Leases and submits completed in the window, halved: steadier than whole pairs when workers
    # run in step, and the same in a steady state (one lease and one submit per pair).
    calls = len(lists["lease_ms"]) + len(lists["submit_ms"])
    figures = {"pairs_completed_in_window": pairs, "pairs_per_s": round(calls / 2 / seconds, 1),
               "leases_per_s": round(len(lists["lease_ms"]) / seconds, 1),
               "submits_per_s": round(len(lists["submit_ms"]) / seconds, 1),
               "latency_ms": {"pair": latency(lists["pair_ms"]), "lease": latency(lists["lease_ms"]),
                              "submit": latency(lists["submit_ms"])},
               "errors_in_window": dict(sorted(errors.items())), "errors_with_warmup": dict(sorted(errors_all.items()))}
    if figures["pairs_per_s"]:
        # Little's law for a closed loop: each worker's cycle is workers / throughput; a window of
        # fewer than a few cycles gives a rough rate.
        figures["worker_cycle_s"] = round(workers / figures["pairs_per_s"], 2)
        figures["window_in_cycles"] = round(seconds / figures["worker_cycle_s"], 1)
    p99 = figures["latency_ms"]["pair"].get("p99", math.inf)
    figures["meets_goal"] = {"pairs_per_s": figures["pairs_per_s"] >= GOAL_PAIRS_PER_S, "p99": p99 < GOAL_P99_MS}
    return figures


def machine_info() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "grpcio": metadata.version("grpcio"),
            "pymongo": metadata.version("pymongo"), "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}


def group_commit_batches(metrics_port: int) -> dict[str, dict[str, float]]:
    """Per group commit of the dispatcher, over its whole run (warm-up and sign-up included), from
    its Prometheus /metrics: mean requests per store batch and mean time a batch took."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    sums: Counter[tuple[str, str]] = Counter()
    counts: Counter[tuple[str, str]] = Counter()
    families = {"labelstream_group_commit_batch_size": "requests", "labelstream_group_commit_batch_seconds": "ms"}
    for family in text_string_to_metric_families(text):
        if family.name not in families:
            continue
        figure = families[family.name]
        for sample in family.samples:
            key = (sample.labels["batch"], figure)
            if sample.name.endswith("_sum"):
                sums[key] = sample.value * (1000 if figure == "ms" else 1)
            elif sample.name.endswith("_count"):
                counts[key] = sample.value
    out: dict[str, dict[str, float]] = {}
    for (name, figure), total in sorted(sums.items()):
        if counts[(name, figure)]:
            out.setdefault(name, {})[f"mean_{figure}"] = round(total / counts[(name, figure)], 2)
    return out


def print_table(report: dict[str, Any], measured: dict[str, Any]) -> None:
    figures = measured["result"]
    table = Table(title=f"dispatcher load: {report['parameters']['workers']} workers, think "
                        f"{measured['think_ms']:.0f} ms, {report['parameters']['seconds']} s measured")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    table.add_row("lease+submit pairs/s", f"{figures['pairs_per_s']:.1f}", f">= {GOAL_PAIRS_PER_S:.0f}")
    for name, values in figures["latency_ms"].items():
        goal = f"p99 < {GOAL_P99_MS:.0f}" if name == "pair" else ""
        table.add_row(f"{name} latency ms p50 / p95 / p99 / max",
                      " / ".join(str(values.get(k, "-")) for k in ("p50", "p95", "p99", "max")), goal)
    for key, count in figures["errors_in_window"].items():
        table.add_row(f"errors: {key}", str(count), "")
    for name, cores in measured["cpu_cores"].items():
        table.add_row(f"CPU cores: {name}", f"{cores:.2f}", "")
    for name, means in measured.get("group_commit_batches", {}).items():
        table.add_row(f"store batch {name}: requests / ms (means)",
                      f"{means.get('mean_requests', 0):.1f} / {means.get('mean_ms', 0):.1f}", "")
    ops = measured.get("store_ops")
    if ops:
        table.add_row("store round-trips per pair (request path)", str(ops["request_path_round_trips_per_pair"]), "")
        table.add_row("store wait ms per pair, sequential (mean)", str(ops["request_path_store_wait_ms_per_pair"]),
                      "")
        table.add_row("pair ms, sequential, in-process (mean)", str(ops["sequential_pair_ms_mean"]), "")
    Console().print(table)


def plot(report: dict[str, Any], path: Path) -> None:
    """Pair latency (p50, p99) against pairs/s, one point per think time, with the goal's lines:
    where the dispatcher stops keeping p99 under the goal as the offered load rises."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(report["runs"], key=lambda run: run["result"]["pairs_per_s"])
    rates = [run["result"]["pairs_per_s"] for run in runs]
    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    for quantile, style in (("p50", "o--"), ("p99", "s-")):
        axes.plot(rates, [run["result"]["latency_ms"]["pair"][quantile] for run in runs], style,
                  label=f"pair latency {quantile}")
    for run, rate in zip(runs, rates, strict=True):
        think = run["think_ms"]
        axes.annotate("closed loop" if think == 0 else f"think {think / 1000:g} s",
                      (rate, run["result"]["latency_ms"]["pair"]["p99"]), textcoords="offset points", xytext=(4, 6),
                      fontsize=8)
    axes.axhline(GOAL_P99_MS, color="tab:red", linewidth=1, label=f"goal: p99 < {GOAL_P99_MS:.0f} ms")
    axes.axvline(GOAL_PAIRS_PER_S, color="tab:red", linewidth=1, linestyle=":",
                 label=f"goal: {GOAL_PAIRS_PER_S:.0f} pairs/s")
    axes.set_yscale("log")
    axes.set_xlim(0, max([*rates, GOAL_PAIRS_PER_S]) * 1.1)
    axes.set_xlabel("lease+submit pairs/s")
    axes.set_ylabel("pair latency, ms (log)")
    parameters = report["parameters"]
    axes.set_title(f"dispatcher under {parameters['workers']:,} gRPC workers, "
                   f"{report['machine']['cpus']} cores shared with store, broker and clients", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000, help="concurrent simulated workers")
    parser.add_argument("--processes", type=int, default=4, help="client processes (one event loop each)")
    parser.add_argument("--connections", type=int, default=0,
                        help="gRPC connections per client process; 0: one per worker, as real annotators")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds run before the window, not counted")
    parser.add_argument("--overlap", type=int, default=3, help="answers per task")
    parser.add_argument("--backlog", type=int, default=2000,
                        help="open tasks in the pool, kept there while the load runs")
    parser.add_argument("--think-ms", type=float, nargs="+", default=[0.0, 2000.0, 4000.0, 8000.0],
                        help="pause between lease and submit; one run (on a fresh stack) per value given")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of each call, seconds")
    parser.add_argument("--grpc-threads", type=int, default=0,
                        help="the dispatcher's request threads (LABELSTREAM_GRPC_THREADS); 0: its default")
    parser.add_argument("--ops-pairs", type=int, default=300, help="pairs run in-process to count store round-trips")
    parser.add_argument("--full-stack", action="store_true",
                        help="keep every service running (default: only the dispatcher, the store and the broker)")
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    if min(options.workers, options.processes, options.overlap, options.backlog) < 1 or options.seconds <= 0:
        parser.error("--workers, --processes, --seconds, --overlap and --backlog must be positive")
    if min(options.think_ms) < 0:
        parser.error("--think-ms must not be negative")
    return options


def interrupt_on_signals() -> None:
    """SIGTERM, and SIGINT even when started in the background (where a shell ignores it), raise
    KeyboardInterrupt, so that the finally blocks stop the clients and the stack."""
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(options: argparse.Namespace, run_dir: Path, texts: list[str]) -> dict[str, Any]:
    """One run, with one think time (options.think_ms is a number here), on a stack of its own."""
    stack = LocalStack(run_dir, free_port_block(), progress=print)
    stack.service_env_overrides["dispatcher"] = dispatcher_env(options.grpc_threads)
    stack.start()
    try:
        return measure(stack, options, texts)
    finally:
        stack.stop()


def dispatcher_env(grpc_threads: int = 0) -> dict[str, str]:
    """The dispatcher's variables for a load run: the per-worker rate limit out of the way."""
    env = {"LABELSTREAM_WORKER_REQUESTS_PER_MINUTE": NO_RATE_LIMIT}
    if grpc_threads:
        env["LABELSTREAM_GRPC_THREADS"] = str(grpc_threads)
    return env


def measure(stack: LocalStack, options: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """One load run on a started stack whose dispatcher has dispatcher_env(). Stops the other
    services and Triton unless options.full_stack, and the dispatcher too when it profiles the
    store round-trips (options.ops_pairs > 0): the caller restarts what it needs."""
    state = stack.state
    if not options.full_stack:
        for name in (*[s for s in SERVICES if s != "dispatcher"], "triton"):
            stack.stop_process(name)
    address = state.grpc_address("dispatcher")
    running = sorted(state.pids)
    store = Store(Settings.from_env({"LABELSTREAM_MONGODB_URI": state.mongodb_uri}))
    try:
        # resolved, as ingest stores a project: the aggregator reads its defaults (aggregation...)
        # when it sees the answers, on a stack whose services all run (--full-stack, or the suite)
        store.put_project(resolve(project_spec(PROJECT, options.overlap)))
        first = store.db.tasks.count_documents({"project_id": PROJECT})  # earlier runs' tasks on this stack
        preload(state, store, backlog(first, options.backlog, options.overlap, texts), "tasks")
        tokens = sign_up_workers(state.grpc_target("dispatcher"), options.workers)

        def start_feeder(progress: Any) -> Feeder:
            feeder = Feeder(state, options.overlap, texts, first + options.backlog, progress)
            feeder.start()
            return feeder

        results, cpu, added = run_load(address, tokens, dict(state.pids), options, start_feeder)
        batches = group_commit_batches(state.ports.metrics["dispatcher"])
        open_tasks = store.db.tasks.count_documents({"project_id": PROJECT, "open_slots": {"$gt": 0}})
    finally:
        store.close()
    figures = merge(results, options.seconds, options.workers)
    ops = None
    if options.ops_pairs:
        stack.stop_process("dispatcher")  # the profile runs its code in this process, on an idle store
        wait_idle(state.pids["store"])
        ops = profile_store_ops(state, tokens, options.overlap, options.ops_pairs, texts,
                                first_index=first + options.backlog + added)
    return {"think_ms": options.think_ms, "result": figures, "cpu_cores": cpu, "store_ops": ops,
            "group_commit_batches": batches,
            "services_running": running,
            "pool": {"backlog_preloaded": options.backlog, "tasks_added_during_run": added,
                     "open_tasks_after_run": open_tasks}}


def main() -> None:
    options = parse_options()
    interrupt_on_signals()
    texts = [row["text"] for row in load_items(TEXTS)]
    machine = machine_info()
    runs = []
    for think_ms in options.think_ms:
        # a fresh stack per run: the pool and the store's size are the same for every think time
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(run(argparse.Namespace(**{**vars(options), "think_ms": think_ms}), Path(tmp), texts))
    report = {
        "goal": {"pairs_per_s": GOAL_PAIRS_PER_S, "pair_p99_ms": GOAL_P99_MS},
        "parameters": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(options).items()},
        "machine": machine,
        "runs": runs,
        "notes": [
            "runs: one per --think-ms value, each on a fresh stack; think_ms is the pause between a worker's "
            "lease and its submit",
            "pair latency = LeaseTask + SubmitAnswer round-trips as the client sees them (think time excluded)",
            "cpu_cores: cores used over the measured window, from /proc (2 cores = 2.0); 'everything else' is "
            "other work on the machine (other agents' tests): the figures are noisy when it is high",
            "store_ops: the dispatcher's request code run in this process, sequentially, with the stack idle",
            "with no think time the loop is closed: mean pair latency ~ workers / pairs_per_s (Little's law), so "
            "1,000 workers and p99 < 50 ms need 20,000 pairs/s; at 500 pairs/s each worker's cycle is 2 s, which "
            "is what --think-ms 2000 offers",
        ],
    }
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2))
    plot(report, options.out.with_suffix(".png"))
    for measured in runs:
        print_table(report, measured)
    print(f"wrote {options.out} and {options.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
