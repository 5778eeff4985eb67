"""UKPConvArg1 replayed through the running stack: the real dispatcher and aggregator, against
majority vote and crowd-kit on the same answers in the same run.

Starts a local stack, applies deploy/examples/preference/ukpconvarg1/replay.yaml and publishes the
pairs to items.raw, each naming the Mechanical Turk workers who judged it as its annotators. Each
of those 2,659 workers signs up through the admin API and answers exactly as they did through the
dispatcher's gRPC API (labelstream.simulation.workforce.ReplayWorkforce), in the order of arguments
the dispatcher drew for them; the aggregator settles each pair with the project's aggregation
(majority vote; replay.yaml says why). Then, on the same answers: our majority vote, one-coin and full
Dawid-Skene in process, crowd-kit's MajorityVote, DawidSkene and MACE, each with its wall time
(scripts/benchmarks/ukp_aggregation.py's code).
Accuracy is against upstream's gold label (MACE's own estimate from these answers) on the pairs
that have one; ties ("equal") are a third label everywhere.

Writes reports/benchmarks/ukp_stack_replay.json and .png.
Usage: python scripts/benchmarks/ukp_stack_replay.py [--pairs N] [--threads 8] [--base-port 22000]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402
from ukp_aggregation import compare_labels, to_crowd  # noqa: E402 - scripts/benchmarks/ukp_aggregation.py

from labelstream.cli import client  # noqa: E402
from labelstream.cli.projects import load_project  # noqa: E402
from labelstream.cli.stack import REPO_ROOT, LocalStack  # noqa: E402
from labelstream.simulation import ukp  # noqa: E402
from labelstream.simulation.workforce import ReplayWorkforce  # noqa: E402

OUT = REPO_ROOT / "reports" / "benchmarks" / "ukp_stack_replay.json"
PROJECT_FILE = ukp.UKP_DIR / "replay.yaml"


def replay_through_stack(items: list[dict], answers: dict[str, dict[tuple[str, ...], str]], threads: int,
                         base_port: int, console: Console) -> dict[str, Any]:
    run_dir = REPO_ROOT / "runs" / f"ukp-replay-{datetime.now():%Y%m%d-%H%M%S}"
    stack = LocalStack(run_dir, base_port, progress=console.log)
    try:
        state = stack.start()
        spec = load_project(PROJECT_FILE)
        client.apply_project(state.grpc_target("ingest"), spec)
        console.print(f"signing up {len(answers)} workers")
        workforce = ReplayWorkforce(state.grpc_target("dispatcher"), spec.project_id, answers,
                                    threads=threads)
        started = time.monotonic()
        client.publish_json_items(state.kafka_bootstrap, spec.project_id, items)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            answering = progress.add_task("recorded answers given", total=None)
            given = workforce.run(timeout_s=3600, on_progress=lambda done, total: progress.update(
                answering, completed=done, total=total))
            answered_s = time.monotonic() - started
            settling = progress.add_task("pairs with a final label", total=len(items))
            client.wait_for_final_labels(state.grpc_target("monitor"), spec.project_id, len(items), 1800,
                                         lambda stats: progress.update(settling, completed=stats.final_labels))
        wall_s = time.monotonic() - started
        finals = client.read_final_labels(state.kafka_bootstrap, spec.project_id)
        return {"finals": finals, "answers_given": given, "unexpected_leases": len(workforce.unexpected),
                "refused": workforce.counters.refused, "answered_s": round(answered_s, 1),
                "wall_s": round(wall_s, 1), "run_dir": str(run_dir)}
    finally:
        stack.stop()


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4))
    names = [f"{r['library']}\n{r['method']}" for r in rows]
    colors = ["tab:green" if r["library"] == "labelstream stack" else "tab:blue" if r["library"] == "labelstream"
              else "tab:gray" for r in rows]
    bars = ax.bar(names, [r["accuracy"] for r in rows], color=colors)
    for bar, row in zip(bars, rows, strict=True):
        ax.annotate(f"{row['accuracy']:.3f}\n{row['wall_ms'] / 1000:.1f} s", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0.8, 0.97)
    ax.set_ylabel("agreement with upstream gold (MACE's estimate)")
    ax.set_title("UKPConvArg1: the stack's replay against aggregation of the same answers")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="the first N pairs (default: all 3,889)")
    parser.add_argument("--threads", type=int, default=8, help="threads playing the workers")
    parser.add_argument("--base-port", type=int, default=22000)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per in-process method (median)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    console = Console(width=150)
    items = ukp.replay_items(limit=args.pairs)
    pairs = {p.pair_id: p for p in ukp.load_pairs()}
    answers = ukp.recorded_answers(items)
    console.print(f"{len(items)} pairs, {sum(len(a) for a in answers.values())} answers by {len(answers)} workers")
    stack = replay_through_stack(items, answers, args.threads, args.base_port, console)
    finals = stack.pop("finals")
    chosen = [pairs[i["item_id"]] for i in items]
    gold = {p.pair_id: p.gold for p in chosen if p.gold is not None}
    stack_accuracy = sum(finals[i].label == g for i, g in gold.items() if i in finals) / len(gold)
    console.print("the same answers, aggregated in process")
    aggregation = load_project(PROJECT_FILE).aggregation
    rows = [{"library": "labelstream stack", "method": f"{aggregation} (dispatcher + aggregator)",
             "accuracy": round(stack_accuracy, 4), "wall_ms": stack["wall_s"] * 1000, "runs": 1, "reference": None},
            *compare_labels(to_crowd(chosen), args.repeats, console)]
    table = Table(title=f"UKPConvArg1 replay: {len(items)} pairs, {len(gold)} with gold")
    for column in ("library", "method", "accuracy", "wall time"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["library"], row["method"], f"{row['accuracy']:.4f}", f"{row['wall_ms'] / 1000:.2f} s")
    console.print(table)
    report = {"pairs": len(items), "pairs_with_gold": len(gold), "final_labels": len(finals),
              "workers": len(answers), **stack, "labels": rows,
              "notes": ["gold is MACE's estimate from the same answers: MACE is scored against itself",
                        "the stack's wall time runs from publishing the pairs to the last final label, with "
                        "every answer given through gRPC by threads playing the workers"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png').name}")


if __name__ == "__main__":
    main()
