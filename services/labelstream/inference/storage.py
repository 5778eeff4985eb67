"""The collections inference owns: predictions (each item's once), and the encoder head's
verified training labels and refits."""

from __future__ import annotations

from pymongo import ASCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "predictions": [Index([("project_id", ASCENDING), ("item_id", ASCENDING)], unique=True)],
    "head_training": [Index([("project_id", ASCENDING)])],
    "head_refits": [],
}
