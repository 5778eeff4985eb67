"""Scale's case, simulated (labelstream.simulation.shortcut): a pairwise pool whose better
response is the longer one in 80% of the items; 20% of the workers always pick the longest
response shown, the rest are honest with accuracies drawn from 0.80-0.95. Under the Scale policy
(qualification, gold rate, Beta blocking, fraud signals), with the gold draw balanced against the
shortcut and drawn as the pool is: the share of shortcut workers blocked within their first 20
tasks, of honest workers blocked, and the real answers the shortcut workers got counted.

Seeds 1 and 3 chose the policy; the figures here are on other seeds. Writes
reports/benchmarks/shortcut_gold.json and .png.
Usage: python scripts/benchmarks/shortcut_gold.py [--seeds 0 2 4 5 6]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from labelstream.cli.stack import REPO_ROOT  # noqa: E402
from labelstream.simulation.shortcut import SCALE_POLICY, simulate  # noqa: E402

OUT = REPO_ROOT / "reports" / "benchmarks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 2, 4, 5, 6])
    parser.add_argument("--honest", type=int, default=400)
    parser.add_argument("--shortcut", type=int, default=100)
    args = parser.parse_args()
    runs = {}
    started = time.monotonic()
    for balanced in (True, False):
        outcomes = [simulate(seed=seed, honest=args.honest, shortcut=args.shortcut, balanced=balanced)
                    for seed in track(args.seeds, description=f"{'balanced' if balanced else 'as the pool'} gold")]
        shortcut = sum(o.shortcut_workers for o in outcomes)
        honest = sum(o.honest_workers for o in outcomes)
        runs["balanced" if balanced else "as_the_pool"] = {
            "shortcut_caught_in_20": sum(o.shortcut_blocked_in_horizon for o in outcomes) / shortcut,
            "honest_blocked": sum(o.honest_blocked for o in outcomes) / honest,
            "shortcut_real_answers_per_worker": sum(o.shortcut_answers_counted for o in outcomes) / shortcut,
            "gold_share_anti_shortcut": sum(o.gold_share_anti_shortcut for o in outcomes) / len(outcomes),
            "per_seed": [asdict(o) for o in outcomes]}
    table = Table(title=f"Scale's case: {args.shortcut} longest-pickers and {args.honest} honest workers per seed, "
                        f"seeds {args.seeds}")
    for column in ("gold draw", "longest-pickers blocked in 20 tasks", "honest blocked",
                   "real answers per longest-picker", "gold on anti-shortcut items"):
        table.add_column(column)
    for name, run in runs.items():
        table.add_row(name.replace("_", " "), f"{run['shortcut_caught_in_20']:.1%}", f"{run['honest_blocked']:.1%}",
                      f"{run['shortcut_real_answers_per_worker']:.1f}", f"{run['gold_share_anti_shortcut']:.1%}")
    Console().print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"seeds": args.seeds, "policy": {f.name: v for f, v in SCALE_POLICY.ListFields()}, "runs": runs,
              "seconds": round(time.monotonic() - started, 1)}
    (OUT / "shortcut_gold.json").write_text(json.dumps(report, indent=2))
    figure, axis = plt.subplots(figsize=(7, 4))
    names = list(runs)
    x = range(len(names))
    axis.bar([i - 0.2 for i in x], [runs[n]["shortcut_caught_in_20"] for n in names], 0.4,
             label="longest-pickers blocked within 20 tasks")
    axis.bar([i + 0.2 for i in x], [runs[n]["honest_blocked"] for n in names], 0.4, label="honest workers blocked")
    axis.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    axis.axhline(0.05, color="grey", linestyle=":", linewidth=1)
    axis.set_xticks(list(x), ["gold balanced against the shortcut", "gold drawn as the pool is"])
    axis.set_ylim(0, 1)
    axis.set_ylabel("share of workers")
    axis.set_title("Scale's case: 80% of best responses are the longest")
    axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(OUT / "shortcut_gold.png", dpi=120)
    print(f"wrote {OUT / 'shortcut_gold.json'} and {OUT / 'shortcut_gold.png'}")


if __name__ == "__main__":
    main()
