"""The collections the router owns: routing decisions, verified items, routing models and the
targets raised by quality alerts."""

from __future__ import annotations

from pymongo import ASCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "decisions": [Index([("project_id", ASCENDING), ("item_id", ASCENDING)], unique=True),
                  Index([("project_id", ASCENDING), ("route", ASCENDING)])],
    "verified": [Index([("project_id", ASCENDING), ("model", ASCENDING)])],
    "routing_models": [],
    "routing_overrides": [],
}
