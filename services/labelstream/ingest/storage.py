"""The collections ingest owns: the projects (their resolved specs), the accepted items, and the
projects' owners (hashes of their tokens; every service reads them to authenticate)."""

from __future__ import annotations

from pymongo import ASCENDING

from labelstream.common.store import Collections, Index

# A service's outbox_<service> (Runtime.outbox()) is its own too, and indexed there.
COLLECTIONS: Collections = {
    "projects": [],
    "items": [Index([("project_id", ASCENDING), ("item_id", ASCENDING)], unique=True)],
    "project_owners": [Index([("token_sha256", ASCENDING)], unique=True)],
}
