"""Benchmark mining: items on which enough trusted workers agree become gold, as Scale does it.
The mined set is balanced against shortcuts: classes stay in the proportion of the project's
final labels, and items whose answer is not the shortcut's weigh more when gold is drawn, so a
worker who always takes the shortcut fails more gold. For a classification task the shortcuts
are the first and the longest option; for a preference item, the longest response (Scale's
GPT-2 case: "pick the longest" paid better than honest work). A preference task's first shown
response is drawn per worker, so picking it is caught by any gold, anti-bias or not."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from pymongo.database import Database

from labelstream.crowd.quality import gold_accuracy, item_shortcuts
from labelstream.monitor.stats import latest_finals

MIN_AGREEING = 3             # trusted workers who gave the same answer, and nobody disagreed
TRUSTED_ACCURACY = 0.8       # Beta posterior mean on gold
TRUSTED_MIN_GOLD = 5
SHORTCUT_WEIGHT = 2.0        # sampling weight of items the shortcut gets wrong


@dataclass(frozen=True)
class Candidate:
    item_id: str
    text: str
    label: str
    weight: float
    responses: tuple[str, ...] = ()   # a preference item's, canonical order


def mine(votes: list[tuple[str, str, str]], trusted: set[str], texts: dict[str, str], labels: list[str],
         class_shares: dict[str, float], existing: set[str], limit: int,
         responses: dict[str, tuple[str, ...]] | None = None) -> list[Candidate]:
    """New gold from (item, worker, label) votes: unanimous items with MIN_AGREEING trusted votes,
    at most `limit`, classes kept near `class_shares`; `responses` are preference items'."""
    responses = responses or {}
    by_item: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item, worker, label in votes:
        by_item[item].append((worker, label))
    pool: dict[str, list[Candidate]] = defaultdict(list)
    for item, item_votes in sorted(by_item.items()):
        if item in existing or item not in texts or len({label for _, label in item_votes}) != 1:
            continue
        label = item_votes[0][1]
        if sum(worker in trusted for worker, _ in item_votes) < MIN_AGREEING:
            continue
        shown = responses.get(item, ())
        weight = SHORTCUT_WEIGHT if label not in item_shortcuts(labels, shown) else 1.0
        pool[label].append(Candidate(item, texts[item], label, weight, shown))
    chosen: list[Candidate] = []
    quota = {label: max(1, round(limit * class_shares.get(label, 1 / max(1, len(labels))))) for label in labels}
    for label, candidates in pool.items():
        # anti-shortcut items first, so the mined set tests more than the shortcut
        candidates.sort(key=lambda c: -c.weight)
        chosen += candidates[:quota.get(label, 0)]
    return chosen[:limit]


def mine_project(db: Database, project_id: str, labels: list[str], limit: int = 200) -> list[Candidate]:
    """Candidates from the monitor's own records: the workers' snapshots, and the human tasks,
    answers, final labels and mined gold it saw on their topics."""
    trusted = {r["worker_id"] for r in db.worker_snapshots.find({"project_id": project_id, "status": "active"})
               if r["gold_correct"] + r["gold_wrong"] >= TRUSTED_MIN_GOLD
               and gold_accuracy(r) >= TRUSTED_ACCURACY}
    if not trusted:
        return []
    events = db.monitor_events
    existing = {g["item_id"] for g in events.find({"project_id": project_id, "kind": "gold_mined"}, {"item_id": 1})}
    if len(existing) >= limit:
        return []
    votes = [(v["item_id"], v["worker_id"], v["label"]) for v in events.find(
        {"project_id": project_id, "kind": "human_response"}, {"item_id": 1, "worker_id": 1, "label": 1})]
    tasks = list(events.find({"project_id": project_id, "kind": "human_task"},
                             {"item_id": 1, "text": 1, "responses": 1}))
    texts = {t["item_id"]: t.get("text", "") for t in tasks}
    responses = {t["item_id"]: tuple(t["responses"]) for t in tasks if t.get("responses")}
    latest = latest_finals(events.find({"project_id": project_id, "kind": "final_label"},
                                       {"item_id": 1, "label": 1, "version": 1}))
    finals = Counter(f["label"] for f in latest.values())
    total = sum(finals.values())
    shares = {label: finals[label] / total for label in labels} if total else {}
    return mine(votes, trusted, texts, labels, shares, existing, limit - len(existing), responses)
