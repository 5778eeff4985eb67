"""The scale-out drill on a local stack: a second process of every consumer service on the same
topics (one consumer group per service, so the two share its partitions), SIGKILLs of those
processes while items flow, each restarted a moment later, and the check that every item still
ends with exactly one final label.

Both the benchmark suite (scripts/benchmarks/suite.py) and the integration test
(integration_tests/test_scale_out.py) run it; a throughput gain cannot be shown on 2 cores, but
correctness can. Items go both ways: the project's threshold sends the unsure ones to people, and
simulated workers answer through both dispatcher processes (each owns the tasks of its partitions).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labelstream.cli import client
from labelstream.cli.stack import SERVICES, LocalStack, replica_name
from labelstream.common.topics import Topics
from labelstream.simulation.workforce import WorkerProfile, Workforce, gold_by_text
from labelstream.v1 import events_pb2

KILL_PAUSE_S = 1.0   # between a SIGKILL and the restart: the group sees the member go, not a blip


@dataclass
class DrillResult:
    items: int
    seconds: float
    replicas: int
    kills: list[str] = field(default_factory=list)   # "router-2 at 117 final labels", in order
    final_at_kills: list[int] = field(default_factory=list)
    human_items: int = 0                              # items whose task went to people (tasks.human)
    tally: client.FinalLabelTally | None = None

    def as_dict(self) -> dict[str, Any]:
        tally = self.tally
        return {"items": self.items, "seconds": round(self.seconds, 1), "processes_per_service": self.replicas,
                "kills": self.kills, "human_items": self.human_items,
                "items_with_a_final_label": tally.with_label if tally else 0,
                "missing": len(tally.missing) if tally else self.items,
                "conflicting": len(tally.conflicting) if tally else 0,
                "unexpected": len(tally.unexpected) if tally else 0,
                "same_label_redelivered": tally.redelivered if tally else 0,
                "exactly_one_final_label_each": bool(tally and tally.exactly_one_each)}


def kill_and_restart(stack: LocalStack, replica: int) -> list[str]:
    """SIGKILL the `replica`-th process of every service, then start each again (same ports)."""
    names = [replica_name(service, replica) for service in SERVICES]
    for name in names:
        stack.signal_service(name, signal.SIGKILL)
    time.sleep(KILL_PAUSE_S)
    for service in SERVICES:
        if replica == 1:
            stack.start_service(service, wait=False)
        else:
            stack.start_replica(service, replica, wait=False)
    for name in names:
        stack.wait_service(name)
    return names


def run_drill(stack: LocalStack, spec: events_pb2.ProjectSpec, items: list[dict[str, Any]], *,
              workers_per_dispatcher: int = 4, profile: WorkerProfile | None = None,
              kill_at: tuple[float, ...] = (0.3, 0.6), timeout_s: float = 600,
              progress: Callable[[str], None] = lambda _msg: None) -> DrillResult:
    """Start replica 2 of every service, publish `items` to `spec`'s project, and at each share of
    `kill_at` of the items finalized SIGKILL one process of every service (replica 1, then 2, in
    turn) and restart it; wait until every item is final, then tally labels.final. The replicas
    keep running afterwards (LocalStack.stop stops them)."""
    state = stack.state
    for service in SERVICES:
        if replica_name(service, 2) not in state.pids:
            stack.start_replica(service, 2, wait=False)
    for service in SERVICES:
        stack.wait_service(replica_name(service, 2))
    client.apply_project(state.grpc_target("ingest"), spec)
    monitor = state.grpc_target("monitor")
    result = DrillResult(items=len(items), seconds=0.0, replicas=2)
    known = gold_by_text(items)
    profile = profile or WorkerProfile(accuracy=0.9, answer_ms=40)
    started = time.monotonic()
    with Workforce(state.grpc_target("dispatcher"), spec.project_id, known, workers_per_dispatcher, profile,
                   seed=1, prefix="drill-a"), \
            Workforce(state.grpc_target(replica_name("dispatcher", 2)), spec.project_id, known,
                      workers_per_dispatcher, profile, seed=2, prefix="drill-b"):
        client.publish_json_items(state.kafka_bootstrap, spec.project_id, items)
        for round_index, share in enumerate(kill_at):
            target = int(len(items) * share)
            client.wait_for_final_labels(monitor, spec.project_id, target, timeout_s=timeout_s)
            done = client.project_stats(monitor, spec.project_id).final_labels
            replica = 1 + round_index % 2
            progress(f"{done} of {len(items)} final: SIGKILL of every service's process {replica}")
            for name in kill_and_restart(stack, replica):
                result.kills.append(f"{name} at {done} final labels")
            result.final_at_kills.append(done)
        client.wait_for_final_labels(state.grpc_target("monitor"), spec.project_id, len(items), timeout_s=timeout_s)
    result.seconds = time.monotonic() - started
    result.human_items = len({task.item_id for task in client.read_topic(
        state.kafka_bootstrap, Topics.TASKS_HUMAN, events_pb2.HumanTask) if task.project_id == spec.project_id})
    result.tally = client.tally_final_labels(state.kafka_bootstrap, spec.project_id,
                                             [str(item["item_id"]) for item in items])
    return result
