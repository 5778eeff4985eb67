"""One benchmark suite: every performance figure of issue 18 against its goal, in one run, on one stack.

Starts its own local stack (ports from --base-port; run it under `flock /tmp/labelstream-stack.lock`
so that it never shares the machine's cores with another stack), then runs the stages named by
--only, in this order:

  auto       auto path throughput (items.raw -> labels.final, every item auto-accepted) against bare
             tritonclient calls to the same model in the same run (inference_throughput.time_bare_model).
             Goal: ratio >= 0.8.
  latency    items published steadily at half the auto path's throughput (runs `auto` first if it was
             not asked for); latency from publish to final label, and ingested_at -> finalized_at as
             the pipeline stamps them. Goal: p95 < 300 ms (publish -> final).
  human      the human path at Scale's rate: items at --human-rate labels/hour to a project that sends
             every item to people, answered by simulated workers taking --human-task-s seconds a task
             (log-normal); the workforce is sized for the rate with 30% headroom. Sustained final
             labels/hour after a warm-up, p95 ingest -> final. Goals: >= 5,000/h, p95 < 5 min.
  dispatcher the dispatcher's load benchmark (dispatcher_load.measure) at --dispatcher-rate pairs/s
             offered (workers x think time), load clients in their own process group whose CPU is
             reported apart. Goals: <= 1.0 CPU ms per lease+submit pair, pair p99 < 50 ms.
  store      store commands per item on the auto and the human path: the services restarted with the
             pymongo instrumentation they ship with (OTEL_EXPORTER_OTLP_ENDPOINT, one span per command)
             sending to an in-process OTLP receiver; the idle rate is measured first and subtracted.
             No goal: fewer is better; reported per service.
  memory     a burst of --burst items published at once; peak RSS of every process while it drains and
             the drain's correctness (every item exactly one final label). Goal: every service's peak
             RSS within --rss-growth-mib of its idle RSS (bounded: backpressure, not a queue in memory).
  scale      two processes of every consumer service, SIGKILLed in turn mid-run
             (labelstream.cli.scale_out.run_drill). Goal: every item exactly one final label.

Between stages the services are restarted where a stage changed them. Writes --out (default
reports/benchmarks/suite.json) and PNG plots beside it (suite_*.png); prints every figure beside its goal.
--quick: small sizes and short durations, to check that the suite works end to end (figures not comparable).

Usage: flock /tmp/labelstream-stack.lock python scripts/benchmarks/suite.py [--quick] [--only auto,latency]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dispatcher_load  # scripts/benchmarks/dispatcher_load.py
import inference_throughput  # scripts/benchmarks/inference_throughput.py
from kafka import KafkaAdminClient, KafkaConsumer
from pymongo import MongoClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelstream.cli import client
from labelstream.cli.projects import load_items, load_project
from labelstream.cli.scale_out import run_drill
from labelstream.cli.stack import REPO_ROOT, SERVICES, LocalStack
from labelstream.common.otlp_receiver import OtlpReceiver
from labelstream.common.settings import Settings
from labelstream.common.topics import consumer_group
from labelstream.simulation.workforce import WorkerProfile, Workforce, gold_by_text

OUT = REPO_ROOT / "reports" / "benchmarks" / "suite.json"
DEMO = REPO_ROOT / "deploy" / "examples" / "sst2"
STAGES = ("auto", "latency", "human", "dispatcher", "store", "memory", "scale")
GOAL_RATIO = 0.8
GOAL_LATENCY_P95_MS = 300.0
GOAL_HUMAN_PER_HOUR = 5000.0
GOAL_HUMAN_P95_S = 300.0
GOAL_CPU_MS_PER_PAIR = 1.0
GOAL_PAIR_P99_MS = 50.0
WORKFORCE_HEADROOM = 1.3     # workers beyond what the rate needs at the median pace (the pace varies)
AUTO_THRESHOLD = 0.01        # two labels: the top probability is >= 0.5, so every item is auto-accepted
HUMAN_THRESHOLD = 1.0        # no top probability reaches it in practice: every item goes to people
SAMPLE_EVERY_S = 0.5


@dataclass
class Figure:
    stage: str
    name: str
    value: float | None
    unit: str
    goal: str = ""
    passed: bool | None = None   # None: no goal (reported only)


@dataclass
class Suite:
    options: argparse.Namespace
    stack: LocalStack
    console: Console
    pool: list[dict[str, Any]]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    auto_items_per_s: float | None = None
    _cursor: int = 0

    def figure(self, stage: str, name: str, value: float | None, unit: str, goal: str = "",
               passed: bool | None = None) -> None:
        self.figures.append(Figure(stage, name, None if value is None else round(value, 3), unit, goal, passed))
        mark = "" if passed is None else ("[green]PASS[/]" if passed else "[red]FAIL[/]")
        shown = "-" if value is None else f"{value:,.3f}".rstrip("0").rstrip(".")
        self.console.print(f"  {name}: [bold]{shown}[/] {unit}" + (f"   goal {goal} {mark}" if goal else ""))

    def items(self, prefix: str, count: int) -> list[dict[str, Any]]:
        """`count` items never sent before in this run: the model caches embeddings by text, so a
        text seen twice would be classified for free. The pool's texts, then the same with a suffix."""
        rows = []
        for _ in range(count):
            cycle, index = divmod(self._cursor, len(self.pool))
            row = self.pool[index]
            rows.append({"item_id": f"{prefix}-{self._cursor:07d}",
                         "text": row["text"] if not cycle else f"{row['text']} ({cycle})",
                         "gold_label": row.get("gold_label", "")})
            self._cursor += 1
        return rows

    def plot_path(self, name: str) -> Path:
        path = self.options.out.with_name(f"{self.options.out.stem}_{name}.png")
        self.plots.append(str(path))
        return path

    @property
    def state(self) -> Any:
        return self.stack.state


# -- helpers shared by the stages ------------------------------------------------------------

def project(suite: Suite, project_id: str, **overrides: Any) -> Any:
    spec = load_project(DEMO / "project.yaml")
    spec.project_id = project_id
    for name, value in overrides.items():
        setattr(spec, name, value)
    client.apply_project(suite.state.grpc_target("ingest"), spec)
    return spec


def wait_final(suite: Suite, project_id: str, expected: int, label: str, timeout_s: float) -> float:
    """Wait until `expected` items of the project are final, with a progress bar; returns the
    monotonic time at which the count was first seen complete."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=suite.console, transient=True) as bar:
        task = bar.add_task(label, total=expected)
        client.wait_for_final_labels(suite.state.grpc_target("monitor"), project_id, expected, timeout_s,
                                     on_progress=lambda s: bar.update(task, completed=s.final_labels),
                                     stall_s=max(120.0, timeout_s / 4))
    return time.monotonic()


def publish(suite: Suite, project_id: str, items: list[dict[str, Any]], rate: float | None = None,
            label: str = "publishing") -> dict[str, int]:
    """Publish items to items.raw, all at once (rate None) or `rate` a second on a steady clock;
    returns each item's send time (epoch ms)."""
    sent_ms: dict[str, int] = {}
    start = time.monotonic()

    def paced() -> Iterator[dict[str, Any]]:
        for index, item in enumerate(items):
            if rate:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent_ms[item["item_id"]] = int(time.time() * 1000)
            yield item

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=suite.console, transient=True) as bar:
        task = bar.add_task(label, total=len(items))
        client.publish_json_items(suite.state.kafka_bootstrap, project_id, paced(),
                                  on_sent=lambda n: bar.advance(task, n))
    return sent_ms


def finals(suite: Suite, project_id: str) -> list[dict[str, Any]]:
    """The project's stored final labels with their times as numbers (the store keeps int64 as text)."""
    with MongoClient(suite.state.mongodb_uri) as mongo:
        docs = list(mongo["labelstream"].final_labels.find(
            {"project_id": project_id}, {"item_id": 1, "source": 1, "ingested_at_ms": 1, "finalized_at_ms": 1}))
    for doc in docs:
        doc["ingested_at_ms"], doc["finalized_at_ms"] = int(doc["ingested_at_ms"]), int(doc["finalized_at_ms"])
    return docs


def quantiles(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {"count": len(ordered), **{f"p{q}": round(dispatcher_load.percentile(ordered, q), 1)
                                      for q in (50, 95, 99)}, "max": round(ordered[-1], 1)}


def restart_services(suite: Suite, env: dict[str, str] | None = None) -> None:
    """Every service (first process) started afresh with `env` beside the stack's own variables,
    and Triton if a stage stopped it."""
    stack = suite.stack
    stack.common_env = dict(env or {})
    for service in SERVICES:
        stack.stop_process(service)
    if "triton" not in stack.state.pids:
        stack.start_triton()
    for service in SERVICES:
        stack.start_service(service, wait=False)
    for service in SERVICES:
        stack.wait_service(service)


def wait_caught_up(suite: Suite, timeout_s: float = 180) -> int:
    """Until every service's consumer group has read every partition it holds to its end, so that a
    stage never measures the work the one before left (answers of the dispatcher's load, a burst's
    tail...). Returns the records that were still to be read at first."""
    bootstrap = suite.state.kafka_bootstrap
    settings = Settings.from_env({"LABELSTREAM_KAFKA_BOOTSTRAP": bootstrap})
    admin, reader = KafkaAdminClient(bootstrap_servers=bootstrap), KafkaConsumer(bootstrap_servers=bootstrap)
    first: int | None = None
    deadline = time.monotonic() + timeout_s
    try:
        with Progress(TextColumn("services catching up: {task.fields[lag]} records to read"),
                      TimeElapsedColumn(), console=suite.console, transient=True) as bar:
            task = bar.add_task("catch-up", lag="?")
            while True:
                lag = 0
                for service in SERVICES:
                    group = consumer_group(settings, service)
                    committed = admin.list_group_offsets([group]).get(group, {})
                    ends = reader.end_offsets(list(committed))
                    lag += sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items() if meta.offset >= 0)
                first = lag if first is None else first
                bar.update(task, lag=lag)
                if lag == 0:
                    return first
                if time.monotonic() > deadline:
                    suite.console.print(f"[yellow]the services still have {lag} records to read after "
                                        f"{timeout_s:.0f} s: a consumer is stuck; the stage runs anyway[/]")
                    return first
                time.sleep(1.0)
    finally:
        admin.close()
        reader.close()


# -- stages ----------------------------------------------------------------------------------

def stage_auto(suite: Suite) -> None:
    n = suite.options.auto_items
    spec = project(suite, "bench-auto", auto_accept_threshold=AUTO_THRESHOLD)
    warm = suite.items("warm", 20)  # first records: consumer joins, the project's head fitted in Triton
    publish(suite, spec.project_id, warm)
    wait_final(suite, spec.project_id, len(warm), "warm-up", 300)
    concurrency = Settings.from_env({}).triton_max_concurrency
    bare_s = inference_throughput.time_bare_model(suite.state, spec, [r["text"] for r in suite.items("bare", n)],
                                                  concurrency)
    items = suite.items("auto", n)
    started = time.monotonic()
    publish(suite, spec.project_id, items, label="auto: publishing")
    done = wait_final(suite, spec.project_id, len(warm) + n, "auto path", 60 + n)
    auto_s = done - started
    bare_rate, auto_rate = n / bare_s, n / auto_s
    suite.auto_items_per_s = auto_rate
    sources = Counter(str(d.get("source")) for d in finals(suite, spec.project_id))
    suite.details["auto"] = {"items": n, "bare_s": round(bare_s, 2), "auto_s": round(auto_s, 2),
                             "triton_max_concurrency": concurrency, "final_label_sources": dict(sources)}
    suite.figure("auto", "bare tritonclient items/s", bare_rate, "items/s")
    suite.figure("auto", "auto path items/s (items.raw -> labels.final)", auto_rate, "items/s")
    ratio = auto_rate / bare_rate
    suite.figure("auto", "auto path / bare model", ratio, "", f">= {GOAL_RATIO}", ratio >= GOAL_RATIO)


def stage_latency(suite: Suite) -> None:
    if suite.auto_items_per_s is None:
        suite.console.print("  latency needs the auto path's throughput: running the auto stage first")
        stage_auto(suite)
    assert suite.auto_items_per_s is not None
    rate = suite.auto_items_per_s / 2
    count = max(10, int(rate * suite.options.latency_seconds))
    spec = project(suite, "bench-latency", auto_accept_threshold=AUTO_THRESHOLD)
    items = suite.items("latency", count)
    sent = publish(suite, spec.project_id, items, rate=rate, label=f"latency: {rate:.1f} items/s")
    wait_final(suite, spec.project_id, count, "latency: draining", 300)
    docs = finals(suite, spec.project_id)
    end_to_end = [d["finalized_at_ms"] - sent[d["item_id"]] for d in docs if d["item_id"] in sent]
    pipeline = [d["finalized_at_ms"] - d["ingested_at_ms"] for d in docs]
    publish_to_final, ingest_to_final = quantiles(end_to_end), quantiles(pipeline)
    suite.details["latency"] = {"rate_items_per_s": round(rate, 2), "items": count,
                                "publish_to_final_ms": publish_to_final, "ingested_to_finalized_ms": ingest_to_final}
    suite.figure("latency", "offered rate (half the auto path's)", rate, "items/s")
    for q in ("p50", "p99"):
        suite.figure("latency", f"publish -> final {q}", publish_to_final.get(q), "ms")
    p95 = publish_to_final.get("p95", math.inf)
    suite.figure("latency", "publish -> final p95", p95, "ms", f"< {GOAL_LATENCY_P95_MS:.0f}",
                 p95 < GOAL_LATENCY_P95_MS)
    suite.figure("latency", "ingested_at -> finalized_at p95 (the pipeline's own stamps)",
                 ingest_to_final.get("p95"), "ms")
    plot_latency(suite.plot_path("latency"), end_to_end, rate)


def stage_human(suite: Suite) -> None:
    options = suite.options
    spec = project(suite, "bench-human", auto_accept_threshold=HUMAN_THRESHOLD)
    per_s = options.human_rate / 3600
    count = max(5, int(per_s * options.human_seconds))
    workforce = math.ceil(per_s * spec.overlap * options.human_task_s * WORKFORCE_HEADROOM)
    items = suite.items("human", count)
    profile = WorkerProfile(accuracy=0.85, answer_ms=options.human_task_s * 1000, speed_sigma=0.4)
    started_ms = int(time.time() * 1000)
    with Workforce(suite.state.grpc_target("dispatcher"), spec.project_id, gold_by_text(items), workforce,
                   profile, seed=7, prefix="human"):
        publish(suite, spec.project_id, items, rate=per_s, label=f"human: {options.human_rate:,.0f} items/h")
        ended_ms = int(time.time() * 1000)
        wait_final(suite, spec.project_id, count, "human: draining", options.human_task_s * 40 + 300)
    docs = finals(suite, spec.project_id)
    # The sustained rate: final labels in the publishing window after a warm-up (the first items
    # need a task time or more before anything can be final).
    warmup_ms = min((ended_ms - started_ms) / 3, options.human_task_s * 1000 * 4)
    window = (started_ms + warmup_ms, ended_ms)
    in_window = sum(window[0] <= d["finalized_at_ms"] < window[1] for d in docs)
    per_hour = in_window / ((window[1] - window[0]) / 3_600_000)
    latency_s = quantiles((d["finalized_at_ms"] - d["ingested_at_ms"]) / 1000 for d in docs)
    sources = Counter(str(d.get("source")) for d in docs)
    suite.details["human"] = {"items": count, "offered_per_hour": options.human_rate, "task_s": options.human_task_s,
                              "workforce": workforce, "overlap": spec.overlap, "window_s": round(
                                  (window[1] - window[0]) / 1000, 1), "final_in_window": in_window,
                              "ingest_to_final_s": latency_s, "final_label_sources": dict(sources)}
    suite.figure("human", "workforce (simulated workers)", workforce, "workers")
    suite.figure("human", "sustained final labels/hour", per_hour, "labels/h", f">= {GOAL_HUMAN_PER_HOUR:,.0f}",
                 per_hour >= GOAL_HUMAN_PER_HOUR)
    p95 = latency_s.get("p95", math.inf)
    suite.figure("human", "ingest -> final p95", p95, "s", f"< {GOAL_HUMAN_P95_S:.0f}", p95 < GOAL_HUMAN_P95_S)
    plot_human(suite.plot_path("human"), docs, started_ms, window, options.human_rate)


def stage_dispatcher(suite: Suite) -> None:
    options = suite.options
    think_ms = options.dispatcher_think_ms
    workers = max(1, round(options.dispatcher_rate * think_ms / 1000))
    load = argparse.Namespace(workers=workers, processes=2, connections=0, seconds=options.dispatcher_seconds,
                              warmup=options.dispatcher_seconds / 3, overlap=3, backlog=1000, think_ms=think_ms,
                              timeout=30.0, grpc_threads=0, ops_pairs=0, full_stack=False)
    texts = [row["text"] for row in suite.pool]
    measured = dispatcher_load.measure(suite.stack, load, texts)
    restart_services(suite)
    figures, cores = measured["result"], measured["cpu_cores"]
    pairs = figures["pairs_per_s"]
    cpu_ms = cores.get("dispatcher", 0.0) * 1000 / pairs if pairs else math.inf
    suite.details["dispatcher"] = {"workers": workers, "think_ms": think_ms, **measured}
    suite.figure("dispatcher", f"lease+submit pairs/s (offered ~{options.dispatcher_rate:.0f})", pairs,
                 "pairs/s")
    suite.figure("dispatcher", "dispatcher CPU per pair", cpu_ms, "ms", f"<= {GOAL_CPU_MS_PER_PAIR}",
                 cpu_ms <= GOAL_CPU_MS_PER_PAIR)
    pair = figures["latency_ms"]["pair"]
    suite.figure("dispatcher", "pair latency p50", pair.get("p50"), "ms")
    p99 = pair.get("p99", math.inf)
    suite.figure("dispatcher", "pair latency p99", p99, "ms", f"< {GOAL_PAIR_P99_MS:.0f}", p99 < GOAL_PAIR_P99_MS)
    for part in ("store", "broker", "load clients", "everything else"):
        suite.figure("dispatcher", f"CPU cores: {part}", cores.get(part), "cores")


def stage_store(suite: Suite) -> None:
    options = suite.options
    receiver = OtlpReceiver().start()
    try:
        # The services' own pymongo instrumentation, as a deployment with a collector has it; a large
        # span queue, so that none is dropped under load (the count would be short).
        restart_services(suite, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                 "OTEL_EXPORTER_OTLP_INSECURE": "true", "LABELSTREAM_OTEL_INSTRUMENT": "pymongo",
                                 "OTEL_BSP_MAX_QUEUE_SIZE": "1000000"})
        time.sleep(3)  # start-up commands (indexes, pool loads) out of the idle window
        idle_s = options.store_idle_seconds
        idle = commands_during(receiver, lambda: time.sleep(idle_s))
        paths: dict[str, dict[str, Any]] = {}
        auto = project(suite, "bench-store-auto", auto_accept_threshold=AUTO_THRESHOLD)
        items = suite.items("store-auto", options.store_items)

        def auto_path() -> None:
            publish(suite, auto.project_id, items, rate=20, label="store: auto path")
            wait_final(suite, auto.project_id, len(items), "store: auto path", 300)

        paths["auto"] = per_item(commands_during(receiver, auto_path), idle, idle_s, len(items))
        human = project(suite, "bench-store-human", auto_accept_threshold=HUMAN_THRESHOLD)
        items = suite.items("store-human", max(10, options.store_items // 4))

        def human_path() -> None:
            with Workforce(suite.state.grpc_target("dispatcher"), human.project_id, gold_by_text(items), 6,
                           WorkerProfile(accuracy=0.85, answer_ms=50), seed=11, prefix="store"):
                publish(suite, human.project_id, items, rate=10, label="store: human path")
                wait_final(suite, human.project_id, len(items), "store: human path", 300)

        paths["human"] = per_item(commands_during(receiver, human_path), idle, idle_s, len(items))
    finally:
        restart_services(suite)  # without the instrumentation: the later stages measure the plain services
        receiver.stop()
    suite.details["store"] = {"idle_commands_per_s": {k: round(v / idle_s, 2) for k, v in idle["by_service"].items()},
                              **paths}
    for path, counted in paths.items():
        suite.figure("store", f"{path} path: store commands per item (all services)", counted["per_item"],
                     "commands")
        for service, value in sorted(counted["per_item_by_service"].items()):
            suite.figure("store", f"{path} path: {service}", value, "commands")


def commands_during(receiver: OtlpReceiver, work: Callable[[], None]) -> dict[str, Any]:
    """Store commands (pymongo spans) the services sent while `work` ran, by service and command."""
    before = len(receiver.spans())
    started = time.monotonic()
    work()
    seconds = time.monotonic() - started
    time.sleep(2.0)  # the services' span processors export every 0.5 s
    spans = [s for s in receiver.spans()[before:] if s["attributes"].get("db.system") == "mongodb"]
    by_service = Counter(s["service"].removeprefix("labelstream-") for s in spans)
    by_command = Counter(f"{s['service'].removeprefix('labelstream-')} {s['name']}" for s in spans)
    return {"seconds": seconds, "by_service": dict(by_service), "by_command": dict(by_command)}


def per_item(counted: dict[str, Any], idle: dict[str, Any], idle_s: float, items: int) -> dict[str, Any]:
    """Commands per item, less what the services send anyway (their idle rate over the same time)."""
    by_service = {service: max(0.0, count - idle["by_service"].get(service, 0) / idle_s * counted["seconds"]) / items
                  for service, count in counted["by_service"].items()}
    by_service = {k: round(v, 2) for k, v in by_service.items()}
    return {"items": items, "seconds": round(counted["seconds"], 1), "per_item": round(sum(by_service.values()), 2),
            "per_item_by_service": by_service,
            "commands_by_service_and_name": dict(sorted(counted["by_command"].items()))}


def stage_memory(suite: Suite) -> None:
    options = suite.options
    # No restart here: the peak is taken from this stage's samples, and in the smoke run a second
    # restart of every service seconds after the store stage's left ingest's consumer idle with
    # items.raw unread (0 of 2,000 final after 250 s; not diagnosed yet).
    spec = project(suite, "bench-burst", auto_accept_threshold=AUTO_THRESHOLD)
    items = suite.items("burst", options.burst)
    sampler = RssSampler(suite.stack)
    sampler.start()
    try:
        time.sleep(2)
        idle = sampler.latest()
        publish(suite, spec.project_id, items, label=f"burst: {len(items):,} items at once")
        wait_final(suite, spec.project_id, len(items), "burst: draining", 600 + len(items) / 5)
    finally:
        sampler.stop()
    tally = client.tally_final_labels(suite.state.kafka_bootstrap, spec.project_id, [i["item_id"] for i in items])
    stored = len(finals(suite, spec.project_id))
    peaks = sampler.peaks()
    suite.details["memory"] = {"items": len(items), "idle_rss_mib": idle, "peak_rss_mib": peaks,
                               "stored_final_labels": stored, "tally": tally_dict(tally),
                               "samples_every_s": SAMPLE_EVERY_S}
    for name in [*SERVICES, "triton", "store", "broker"]:
        growth = peaks.get(name, 0.0) - idle.get(name, 0.0)
        goal = f"<= +{options.rss_growth_mib:.0f} MiB over idle" if name in SERVICES else ""
        suite.figure("memory", f"peak RSS {name} (idle {idle.get(name, 0):.0f} MiB)", peaks.get(name), "MiB", goal,
                     growth <= options.rss_growth_mib if name in SERVICES else None)
    exact = tally.exactly_one_each and stored == len(items)
    suite.figure("memory", "burst drained: items with exactly one final label", tally.with_label, "items",
                 f"= {len(items):,}", exact)
    plot_memory(suite.plot_path("memory"), sampler, len(items))


class RssSampler(threading.Thread):
    """RSS of every stack process (each in its own session: children counted) every SAMPLE_EVERY_S."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.stack = stack
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(SAMPLE_EVERY_S):
            self.samples.append((time.monotonic() - started, rss_by_session(dict(self.stack.state.pids))))

    def latest(self) -> dict[str, float]:
        return self.samples[-1][1] if self.samples else rss_by_session(dict(self.stack.state.pids))

    def peaks(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for _, sample in self.samples:
            for name, mib in sample.items():
                out[name] = max(out.get(name, 0.0), mib)
        return out

    def stop(self) -> None:
        self.done.set()
        self.join(5)


def rss_by_session(pids: dict[str, int]) -> dict[str, float]:
    """MiB resident per stack process, its session's processes summed (Triton's backend stubs are its children)."""
    sessions: Counter[int] = Counter()
    page_mib = os.sysconf("SC_PAGE_SIZE") / 2**20
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                session = int(stat.read().rsplit(")", 1)[1].split()[3])
            with open(f"/proc/{entry}/statm") as statm:
                sessions[session] += int(statm.read().split()[1]) * page_mib
        except (OSError, IndexError, ValueError):
            continue
    return {name: round(sessions.get(pid, 0.0), 1) for name, pid in pids.items()}


def stage_scale(suite: Suite) -> None:
    spec = load_project(DEMO / "project.yaml")
    spec.project_id = "bench-scale"
    spec.auto_accept_threshold = 0.9  # about half to people: the dispatchers and their outbox are in the drill
    items = suite.items("scale", suite.options.scale_items)
    result = run_drill(suite.stack, spec, items, workers_per_dispatcher=6, timeout_s=900,
                       progress=suite.console.print)
    summary = result.as_dict()
    suite.details["scale"] = summary
    suite.figure("scale", "SIGKILLs (2 processes of each of the 6 services)", len(result.kills), "kills")
    suite.figure("scale", "items with exactly one final label", result.tally.with_label if result.tally else 0,
                 "items", f"= {len(items):,}", summary["exactly_one_final_label_each"]
                 and summary["items_with_a_final_label"] == len(items))


def tally_dict(tally: client.FinalLabelTally) -> dict[str, Any]:
    return {"items": tally.items, "with_label": tally.with_label, "missing": len(tally.missing),
            "conflicting": len(tally.conflicting), "unexpected": len(tally.unexpected),
            "redelivered": tally.redelivered, "exactly_one_each": tally.exactly_one_each}


RUNNERS: dict[str, Callable[[Suite], None]] = {
    "auto": stage_auto, "latency": stage_latency, "human": stage_human, "dispatcher": stage_dispatcher,
    "store": stage_store, "memory": stage_memory, "scale": stage_scale}


# -- plots -----------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(path: Path, latencies_ms: list[float], rate: float) -> None:
    """Share of items final within t (the latency's CDF), with the goal's line at p95."""
    plt = _pyplot()
    ordered = sorted(latencies_ms)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    axes.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label="publish -> final label")
    axes.axvline(GOAL_LATENCY_P95_MS, color="tab:red", linewidth=1, label=f"goal: p95 < {GOAL_LATENCY_P95_MS:.0f} ms")
    axes.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xscale("log")
    axes.set_xlabel("latency, ms (log)")
    axes.set_ylabel("share of items final")
    axes.set_title(f"auto path at {rate:.1f} items/s (half its throughput)", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_human(path: Path, docs: list[dict[str, Any]], started_ms: int, window: tuple[float, float],
               offered_per_hour: float) -> None:
    """Final labels over time against the goal's rate, with the measured window shaded."""
    plt = _pyplot()
    times = sorted((d["finalized_at_ms"] - started_ms) / 1000 for d in docs)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    axes.step(times, range(1, len(times) + 1), where="post", label="final labels")
    end = times[-1] if times else 1.0
    axes.plot([0, end], [0, GOAL_HUMAN_PER_HOUR / 3600 * end], color="tab:red", linewidth=1,
              label=f"goal: {GOAL_HUMAN_PER_HOUR:,.0f} labels/h")
    axes.axvspan((window[0] - started_ms) / 1000, (window[1] - started_ms) / 1000, color="grey", alpha=0.15,
                 label="measured window")
    axes.set_xlabel("seconds since the first item")
    axes.set_ylabel("final labels")
    axes.set_title(f"human path, items offered at {offered_per_hour:,.0f}/h", fontsize=9)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_memory(path: Path, sampler: RssSampler, items: int) -> None:
    """RSS of every service over the burst's drain."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for name in SERVICES:
        axes.plot([t for t, _ in sampler.samples], [s.get(name, 0.0) for _, s in sampler.samples], label=name)
    axes.set_xlabel("seconds")
    axes.set_ylabel("RSS, MiB")
    axes.set_title(f"services' resident memory while a burst of {items:,} items drains", fontsize=9)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- the run ---------------------------------------------------------------------------------

def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(STAGES), help=f"comma list of stages: {', '.join(STAGES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes and short durations (a smoke run)")
    parser.add_argument("--base-port", type=int, default=24000)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--auto-items", type=int, help="items per side of the auto stage (default 1500; quick 200)")
    parser.add_argument("--latency-seconds", type=float, help="publishing time of the latency stage (60; quick 10)")
    parser.add_argument("--human-rate", type=float, default=GOAL_HUMAN_PER_HOUR, help="items offered per hour")
    parser.add_argument("--human-task-s", type=float, help="median seconds per task of a worker (20; quick 5)")
    parser.add_argument("--human-seconds", type=float, help="publishing time of the human stage (900; quick 60)")
    parser.add_argument("--dispatcher-rate", type=float, default=100.0, help="lease+submit pairs/s offered")
    parser.add_argument("--dispatcher-think-ms", type=float, default=2000.0, help="each load worker's think time")
    parser.add_argument("--dispatcher-seconds", type=float, help="measured window (30; quick 10)")
    parser.add_argument("--store-items", type=int, help="auto-path items counted (200; quick 60); human: a quarter")
    parser.add_argument("--store-idle-seconds", type=float, default=10.0, help="idle window, for the background rate")
    parser.add_argument("--burst", type=int, help="items published at once (100000; quick 2000)")
    parser.add_argument("--rss-growth-mib", type=float, default=256.0, help="memory goal: peak RSS over idle")
    parser.add_argument("--scale-items", type=int, help="items of the scale-out drill (1000; quick 300)")
    options = parser.parse_args()
    full = {"auto_items": 1500, "latency_seconds": 60.0, "human_task_s": 20.0, "human_seconds": 900.0,
            "dispatcher_seconds": 30.0, "store_items": 200, "burst": 100_000, "scale_items": 1000}
    quick = {"auto_items": 200, "latency_seconds": 10.0, "human_task_s": 5.0, "human_seconds": 60.0,
             "dispatcher_seconds": 10.0, "store_items": 60, "burst": 2000, "scale_items": 300}
    for name, value in (quick if options.quick else full).items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    options.stages = [s.strip() for s in options.only.split(",") if s.strip()]
    unknown = set(options.stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    options.stages = [s for s in STAGES if s in options.stages]  # the suite's order, whatever was given
    return options


def print_summary(suite: Suite) -> None:
    table = Table(title="labelstream benchmark suite" + (" (--quick: a smoke run)" if suite.options.quick else ""))
    for column in ("stage", "figure", "value", "goal", ""):
        table.add_column(column, justify="right" if column == "value" else "left")
    for f in suite.figures:
        mark = "" if f.passed is None else ("[green]PASS[/]" if f.passed else "[red]FAIL[/]")
        value = "-" if f.value is None else f"{f.value:,.3f}".rstrip("0").rstrip(".")
        table.add_row(f.stage, f.name, f"{value} {f.unit}".strip(), f.goal, mark)
    suite.console.print(table)


def main() -> None:
    options = parse_options()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    dispatcher_load.interrupt_on_signals()
    console = Console()
    pool = load_items(DEMO / "pool.jsonl")
    machine = dispatcher_load.machine_info()
    started = time.monotonic()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), options.base_port, progress=lambda m: console.print(f"[dim]{m}[/]"))
        # The load stage's workers answer far faster than people: the per-worker limit must not decide it.
        stack.service_env_overrides["dispatcher"] = dispatcher_load.dispatcher_env()
        suite = Suite(options, stack, console, pool)
        stack.start()
        timings["stack_start"] = round(time.monotonic() - started, 1)
        try:
            for stage in options.stages:
                console.rule(f"stage: {stage}")
                stage_started = time.monotonic()
                try:
                    wait_caught_up(suite)
                    RUNNERS[stage](suite)
                except Exception as error:  # the report keeps the other stages' figures and says what failed
                    console.print_exception()
                    suite.details.setdefault(stage, {})["error"] = f"{type(error).__name__}: {error}"
                    suite.figure(stage, "stage completed", None, "", "no error", False)
                timings[stage] = round(time.monotonic() - stage_started, 1)
        finally:
            stack.stop()
    timings["total"] = round(time.monotonic() - started, 1)
    report = {
        "quick": options.quick, "stages": options.stages, "machine": machine,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(), "seconds": timings,
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
        "figures": [asdict(f) for f in suite.figures], "details": suite.details, "plots": suite.plots,
        "passed": sum(f.passed is True for f in suite.figures), "failed": sum(f.passed is False for f in suite.figures),
    }
    options.out.write_text(json.dumps(report, indent=2, default=str))
    print_summary(suite)
    console.print(f"stages took {timings}; wrote {options.out}" + "".join(f", {p}" for p in suite.plots))


if __name__ == "__main__":
    main()
