"""Throughput of the inference service against bare tritonclient calls to the same Triton model.

Starts a local stack on free ports, then in one run (only Triton and the inference service busy):
- bare: TritonClassifier.predict on N texts in requests of 64 (the model's max batch), with the
  same concurrency the service uses;
- service: N items published to items.accepted, timed until N predictions are stored.
Different texts for each half (the model caches embeddings by text). Prints the figures and
writes reports/benchmarks/inference_throughput.json.

Usage: python scripts/benchmarks/inference_throughput.py [--items 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kafka import KafkaProducer
from pymongo import MongoClient
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from labelstream.cli import client
from labelstream.cli.projects import load_items, load_project
from labelstream.cli.stack import REPO_ROOT, LocalStack, StackState, free_port_block
from labelstream.common.settings import Settings
from labelstream.common.topics import Topics
from labelstream.inference.triton import TritonClassifier
from labelstream.v1 import events_pb2

OUT = REPO_ROOT / "reports" / "benchmarks" / "inference_throughput.json"


def time_bare_model(state: StackState, spec: events_pb2.ProjectSpec, texts: list[str], concurrency: int) -> float:
    """Seconds that bare tritonclient calls (TritonClassifier.predict: requests of the model's max
    batch, `concurrency` in flight, as the service sends them) take to classify `texts` with the
    project's model, after one warm-up call that fits the project's head as the service would."""
    triton = TritonClassifier(f"127.0.0.1:{state.ports.triton_grpc}", timeout_s=120, max_concurrency=concurrency)
    try:
        triton.predict(spec.model, ["warm-up"], spec)
        started = time.perf_counter()
        triton.predict(spec.model, texts, spec)
        return time.perf_counter() - started
    finally:
        triton.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000, help="items per side (at most 2000)")
    options = parser.parse_args()
    demo = REPO_ROOT / "deploy" / "examples" / "sst2"
    spec = load_project(demo / "project.yaml")
    spec.project_id = "bench-inference"
    pool = load_items(demo / "pool.jsonl")
    n = min(options.items, len(pool) // 2)
    bare_texts = [r["text"] for r in pool[:n]]
    service_rows = pool[n:2 * n]
    concurrency = Settings.from_env({}).triton_max_concurrency

    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp), free_port_block(), progress=print)
        # Micro-batches of two Triton requests, so that both in-flight slots are used.
        stack.service_env_overrides["inference"] = {"LABELSTREAM_KAFKA_POLL_MAX_RECORDS": "128",
                                                    "LABELSTREAM_KAFKA_BATCH_WAIT_MS": "50"}
        stack.start()
        try:
            state = stack.state
            client.apply_project(state.grpc_target("ingest"), spec)
            bare_s = time_bare_model(state, spec, bare_texts, concurrency)

            # Only the inference service runs while it is measured: on 2 cores the services downstream
            # would otherwise take CPU from Triton, which the bare calls did not have to share.
            for service in ("ingest", "router", "dispatcher", "aggregator", "monitor"):
                stack.stop_process(service)
            producer = KafkaProducer(bootstrap_servers=state.kafka_bootstrap, acks="all", linger_ms=5)
            predictions = MongoClient(state.mongodb_uri)["labelstream"].predictions
            started = time.perf_counter()
            for row in service_rows:
                item = events_pb2.Item(schema_version=1, project_id=spec.project_id, item_id=row["item_id"],
                                       text=row["text"], ingested_at_ms=int(time.time() * 1000))
                producer.send(Topics.ITEMS_ACCEPTED, key=f"{spec.project_id}:{row['item_id']}".encode(),
                              value=item.SerializeToString())
            producer.flush()
            with Progress(TextColumn("service"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
                task = bar.add_task("service", total=n)
                while (done := predictions.count_documents({"project_id": spec.project_id})) < n:
                    bar.update(task, completed=done)
                    time.sleep(0.2)
                bar.update(task, completed=n)
            service_s = time.perf_counter() - started
            producer.close()
        finally:
            stack.stop()

    report = {
        "items_per_side": n, "model": spec.model, "triton_max_concurrency": concurrency,
        "bare_tritonclient_items_per_s": round(n / bare_s, 1), "service_items_per_s": round(n / service_s, 1),
        "ratio_service_to_bare": round(bare_s / service_s, 3), "bare_s": round(bare_s, 2),
        "service_s": round(service_s, 2),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
