"""The collections the monitor owns: its record of every event it consumed, the alerts that are
active, and its copy of the workers' records (the dispatcher's snapshots on quality.events)."""

from __future__ import annotations

from pymongo import ASCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "monitor_events": [Index([("project_id", ASCENDING), ("kind", ASCENDING)])],
    "active_alerts": [Index([("project", ASCENDING)])],
    "worker_snapshots": [Index([("project_id", ASCENDING)])],
}
