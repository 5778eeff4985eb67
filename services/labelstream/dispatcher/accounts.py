"""Worker accounts (the `workers` collection, which keeps only a hash of each token) and the
per-worker rate limit. Who a token names is decided in one place for every service
(labelstream.common.auth: the gRPC interceptor and its TokenDirectory); this is the worker's door
on top of it, the same whether a request comes over gRPC or from the annotator page. Every refusal
is a PoolError naming its gRPC status."""

from __future__ import annotations

import threading
import time

from pymongo.errors import DuplicateKeyError

from labelstream.common.auth import AuthError, Role, TokenDirectory, hash_token, new_token
from labelstream.common.inputs import unsafe_character
from labelstream.common.store import Store
from labelstream.common.telemetry import now_ms
from labelstream.dispatcher.pool import PoolError


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
    def __init__(self, store: Store, requests_per_minute: int, tokens: TokenDirectory | None = None) -> None:
        """`tokens`: the process's directory (shared with its gRPC interceptor, so that a rotation
        here takes effect there at once); without one, a directory of the store's tokens."""
        self.workers = store.db.workers
        self.tokens = tokens or TokenDirectory(store)
        self.limiter = RateLimiter(requests_per_minute)

    def authenticate(self, token: str) -> str:
        """The worker a token belongs to (UNAUTHENTICATED when missing or unknown, PERMISSION_DENIED
        when it is no worker's), within the worker's rate limit."""
        try:
            principal = self.tokens.identify(token)
        except AuthError as refusal:
            raise PoolError(refusal.code.name, str(refusal)) from None
        if principal.role != Role.WORKER:
            raise PoolError("PERMISSION_DENIED", f"this needs a worker token; yours is of role {principal.role}")
        return self.admit(principal.name)

    def admit(self, worker_id: str) -> str:
        """The worker, unless over their rate limit (RESOURCE_EXHAUSTED)."""
        if not self.limiter.allow(worker_id):
            raise PoolError("RESOURCE_EXHAUSTED", "too many requests; slow down and retry in a few seconds")
        return worker_id

    def create_worker(self, worker_id: str, rotate: bool = False) -> str:
        """A new worker account, or with `rotate` a new token for an existing one; the token
        (returned once, never stored)."""
        if not worker_id or len(worker_id) > 128 or any(c in worker_id for c in "|: \t\n"):
            raise PoolError("INVALID_ARGUMENT", "worker_id must be 1-128 characters without '|', ':' or spaces")
        if (unsafe := unsafe_character(worker_id, identifier=True)) is not None:
            raise PoolError("INVALID_ARGUMENT", f"worker_id contains {unsafe}: use printable characters only")
        token = new_token(Role.WORKER)
        doc = {"_id": worker_id, "token_sha256": hash_token(token), "created_ms": now_ms()}
        try:
            self.workers.insert_one(doc)
        except DuplicateKeyError as exc:
            if not rotate:
                raise PoolError("ALREADY_EXISTS", f"worker {worker_id!r} exists; pass rotate_token to issue "
                                                  "a new token") from exc
            self.workers.update_one({"_id": worker_id}, {"$set": {"token_sha256": doc["token_sha256"]}})
            self.tokens.forget()
        return token
