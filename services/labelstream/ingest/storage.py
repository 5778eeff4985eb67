"""The collections ingest owns: the projects (their resolved specs) and the accepted items."""

from __future__ import annotations

from pymongo import ASCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "projects": [],
    "items": [Index([("project_id", ASCENDING), ("item_id", ASCENDING)], unique=True)],
}
