"""Who is calling: worker accounts (the `workers` collection, which keeps only a hash of each
token), the admin token, and the per-worker rate limit. Kept apart from the work so that every
request passes the same door, whether it comes over gRPC or from the annotator page; every
refusal is a PoolError naming its gRPC status."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from cachetools import TTLCache
from pymongo.errors import DuplicateKeyError

from labelstream.common.inputs import unsafe_character
from labelstream.common.store import Store
from labelstream.common.telemetry import now_ms
from labelstream.dispatcher.pool import PoolError

# Every request authenticates: a token is looked up in the store at most this often, so a
# rotated token still works here for up to this long.
TOKEN_CACHE_SECONDS = 30.0
TOKEN_CACHE_SIZE = 65_536  # far more workers than one dispatcher serves; an evicted one is looked up again


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RateLimiter:
    """Token bucket per worker (per process)."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, per_minute // 6))  # bursts of up to ten seconds' worth
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def allow(self, worker_id: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(worker_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1:
                self.buckets[worker_id] = (tokens, now)
                return False
            self.buckets[worker_id] = (tokens - 1, now)
            return True


class Accounts:
    def __init__(self, store: Store, admin_token: str, requests_per_minute: int) -> None:
        self.workers = store.db.workers
        self.admin_token_hash = hash_token(admin_token) if admin_token else ""
        self.limiter = RateLimiter(requests_per_minute)
        # token digest -> worker id
        self._tokens: TTLCache[str, str] = TTLCache(maxsize=TOKEN_CACHE_SIZE, ttl=TOKEN_CACHE_SECONDS)
        self._lock = threading.Lock()

    def authenticate(self, token: str) -> str:
        """The worker a token belongs to; UNAUTHENTICATED when missing or unknown."""
        if not token:
            raise PoolError("UNAUTHENTICATED", "sign in: send 'authorization: Bearer <your worker token>'")
        digest = hash_token(token)
        with self._lock:
            worker_id = self._tokens.get(digest)
        if worker_id is None:
            doc = self.workers.find_one({"token_sha256": digest}, {"_id": 1})
            if doc is None:
                raise PoolError("UNAUTHENTICATED", "this token is not valid (it may have been rotated); "
                                                   "ask your project admin for a new one")
            worker_id = doc["_id"]
            with self._lock:
                self._tokens[digest] = worker_id
        if not self.limiter.allow(worker_id):
            raise PoolError("RESOURCE_EXHAUSTED", "too many requests; slow down and retry in a few seconds")
        return worker_id

    def require_admin(self, token: str) -> None:
        if not self.admin_token_hash:
            raise PoolError("PERMISSION_DENIED", "admin calls are disabled: set LABELSTREAM_ADMIN_TOKEN "
                                                 "on the dispatcher")
        if not token:
            raise PoolError("UNAUTHENTICATED", "admin calls need 'authorization: Bearer <admin token>'")
        if not hmac.compare_digest(hash_token(token), self.admin_token_hash):
            raise PoolError("PERMISSION_DENIED", "this call needs the admin token")

    def create_worker(self, worker_id: str, rotate: bool = False) -> str:
        """A new worker account, or with `rotate` a new token for an existing one; the token
        (returned once, never stored)."""
        if not worker_id or len(worker_id) > 128 or any(c in worker_id for c in "|: \t\n"):
            raise PoolError("INVALID_ARGUMENT", "worker_id must be 1-128 characters without '|', ':' or spaces")
        if (unsafe := unsafe_character(worker_id, identifier=True)) is not None:
            raise PoolError("INVALID_ARGUMENT", f"worker_id contains {unsafe}: use printable characters only")
        token = "lsw_" + secrets.token_urlsafe(24)
        doc = {"_id": worker_id, "token_sha256": hash_token(token), "created_ms": now_ms()}
        try:
            self.workers.insert_one(doc)
        except DuplicateKeyError as exc:
            if not rotate:
                raise PoolError("ALREADY_EXISTS", f"worker {worker_id!r} exists; pass rotate_token to issue "
                                                  "a new token") from exc
            self.workers.update_one({"_id": worker_id}, {"$set": {"token_sha256": doc["token_sha256"]}})
            with self._lock:
                self._tokens.clear()
        return token
