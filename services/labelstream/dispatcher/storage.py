"""The collections the dispatcher owns: the task pool's journal (tasks, assignments), gold,
worker accounts and records, pay rates, and the answers' outbox (responses)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "tasks": [Index([("status", ASCENDING), ("priority", DESCENDING), ("created_ms", ASCENDING)]),
              Index([("project_id", ASCENDING), ("item_id", ASCENDING)], unique=True)],
    "assignments": [Index([("task_id", ASCENDING), ("worker_id", ASCENDING)], unique=True),
                    Index([("handle", ASCENDING)], unique=True),
                    Index([("worker_id", ASCENDING), ("project_id", ASCENDING), ("gold", ASCENDING)]),
                    Index([("status", ASCENDING), ("lease_expires_ms", ASCENDING)])],
    "gold": [Index([("project_id", ASCENDING)])],
    "workers": [Index([("token_sha256", ASCENDING)], unique=True)],
    "worker_quality": [Index([("project_id", ASCENDING)])],
    "pay_rates": [],
    "responses": [Index([("task_id", ASCENDING), ("worker_id", ASCENDING)], unique=True),
                  Index([("published", ASCENDING)])],
}
