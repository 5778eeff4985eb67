"""The collections the aggregator owns: votes, the tasks it asked votes for, final labels, the
workers whose votes no longer count, and its copy of the workers' gold records (from the
dispatcher's worker_quality snapshots on quality.events)."""

from __future__ import annotations

from pymongo import ASCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "votes": [Index([("task_id", ASCENDING), ("worker_id", ASCENDING)], unique=True)],
    "vote_requests": [],
    "final_labels": [Index([("project_id", ASCENDING), ("item_id", ASCENDING)], unique=True)],
    "excluded_workers": [Index([("project_id", ASCENDING)])],
    "worker_skills": [Index([("project_id", ASCENDING)])],
}
