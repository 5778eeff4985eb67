"""Who may call which RPC: one server interceptor on every service, driven by one table.

A caller sends `authorization: Bearer <token>`. A token names a principal of one role:

- admin: the admin token (LABELSTREAM_ADMIN_TOKEN): projects, owners, worker accounts;
- owner: a project owner's token (made by the admin call IngestService.CreateProjectOwner, stored
  in `project_owners`): may manage and read one project;
- worker: a worker's token (made by DispatcherService.CreateWorker, stored in `workers`);
- service: the services' own token (LABELSTREAM_SERVICE_TOKEN), for calls between services and
  from upstream systems that feed items.

Only the sha256 of a stored token is kept (`hash_token`). `RULES` maps every RPC's full method name
to the roles it admits; an RPC without an entry is refused to everyone (fail closed), and a unit
test enumerates the generated service descriptors so none stays without one. The gRPC health
service stays open (`OPEN`), for probes. A rule that admits owners names the request field
holding the project id: an owner passes only for their own project.

The web pages' JSON APIs follow the same roles: `WEB_RULES` maps each API path to its rule, checked
by the same `TokenDirectory.identify` and `authorize` (the "request" there is the query, a dict);
`HTTP_STATUS` turns a refusal's gRPC status into the page's HTTP status.

The interceptor makes the caller known to the handler through `caller()`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import grpc
from cachetools import TTLCache

from labelstream.common.store import Store

# A token is looked up in the store at most this often, so a rotated token still works for up to
# this long in a process that saw it before the rotation (`forget` ends that at once locally).
TOKEN_CACHE_SECONDS = 30.0
TOKEN_CACHE_SIZE = 65_536  # far more callers than one process serves; an evicted one is looked up again


class Role(StrEnum):
    ADMIN = "admin"
    OWNER = "owner"
    WORKER = "worker"
    SERVICE = "service"


# Prefixes that tell a token's kind at a glance (in a log, a secret store); never trusted for the role.
TOKEN_PREFIX = {Role.ADMIN: "lsa_", Role.OWNER: "lso_", Role.WORKER: "lsw_", Role.SERVICE: "lss_"}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: Role) -> str:
    return TOKEN_PREFIX[role] + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, a name (the worker or owner id; "admin", "service") and, for an
    owner, the project they own."""

    role: Role
    name: str
    project_id: str = ""


@dataclass(frozen=True)
class Rule:
    """The roles an RPC admits; `project` is the dotted path of the request field naming the
    project, required when owners are admitted (an owner passes only for their own project)."""

    roles: frozenset[Role]
    project: str = ""


# A rule's `project` for a call that names no project but answers about several (a listing): an
# owner passes, and the handler limits the answer to the owner's own project (`readable_projects`).
OWN_PROJECTS = "*"


def _rule(*roles: Role, project: str = "") -> Rule:
    return Rule(frozenset(roles), project)


ADMIN, OWNER, WORKER, SERVICE = Role.ADMIN, Role.OWNER, Role.WORKER, Role.SERVICE
V1 = "/labelstream.v1."

RULES: dict[str, Rule] = {
    # ingest: items come from a project's owner or an upstream service; projects are the admin's or
    # their owner's; owners are made by the admin.
    V1 + "IngestService/Submit": _rule(OWNER, SERVICE, project="item.project_id"),
    V1 + "IngestService/ApplyProject": _rule(ADMIN, OWNER, project="project.project_id"),
    V1 + "IngestService/GetProject": _rule(ADMIN, OWNER, SERVICE, project="project_id"),
    V1 + "IngestService/CreateProjectOwner": _rule(ADMIN),
    V1 + "InferenceService/Predict": _rule(ADMIN, OWNER, SERVICE, project="project_id"),
    V1 + "RouterService/Explain": _rule(ADMIN, OWNER, project="project_id"),
    # dispatcher: a worker's own work; accounts are the admin's; a project's gold and workers are
    # the admin's or the project owner's.
    V1 + "DispatcherService/LeaseTask": _rule(WORKER),
    V1 + "DispatcherService/SubmitAnswer": _rule(WORKER),
    V1 + "DispatcherService/SkipTask": _rule(WORKER),
    V1 + "DispatcherService/GetMyStats": _rule(WORKER),
    V1 + "DispatcherService/CreateWorker": _rule(ADMIN),
    V1 + "DispatcherService/AddGold": _rule(ADMIN, OWNER, project="project_id"),
    V1 + "DispatcherService/GetWorker": _rule(ADMIN, OWNER, project="project_id"),
    V1 + "DispatcherService/ListWorkers": _rule(ADMIN, OWNER, project="project_id"),
    V1 + "DispatcherService/BlockWorker": _rule(ADMIN, OWNER, project="project_id"),
    V1 + "AggregatorService/GetFinalLabel": _rule(ADMIN, OWNER, SERVICE, project="project_id"),
    V1 + "MonitorService/GetProjectStats": _rule(ADMIN, OWNER, project="project_id"),
}
# Open to anyone: health checks (Kubernetes probes, load balancers, the local stack's readiness).
OPEN = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

# The monitor's dashboard API (labelstream.monitor.dashboard_web), by "<page> <path>"; `project`
# names the query parameter. A project's dashboard is what GetProjectStats answers, drawn: the same
# roles by construction. The page itself and /healthz stay open (no data in them); the annotator
# page's API admits workers alone (labelstream.dispatcher.accounts.Accounts.authenticate).
WEB_RULES: dict[str, Rule] = {
    "dashboard /api/projects": _rule(ADMIN, OWNER, project=OWN_PROJECTS),
    "dashboard /api/dashboard": Rule(RULES[V1 + "MonitorService/GetProjectStats"].roles, "project_id"),
}
# A refusal's HTTP status on a web page (its body names the gRPC status: {"error", "code"}).
HTTP_STATUS = {grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
               grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN}


class AuthError(Exception):
    """A refusal: `code` is the gRPC status, the message says what was wrong and what to do."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def bearer(metadata: Any) -> str:
    """The token of `authorization: Bearer <token>` metadata ("" when there is none)."""
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def request_project(request: object, path: str) -> str:
    """The project id at `path` (e.g. "item.project_id") of a request; "" when absent. A web API's
    request is its parsed query (name -> list of values, as urllib.parse.parse_qs gives): the first."""
    value: Any = request
    for name in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
        else:
            value = getattr(value, name, None)
        if value is None:
            return ""
    return value if isinstance(value, str) else ""


def authorize(rule: Rule | None, method: str, principal: Principal, request: object) -> None:
    """PERMISSION_DENIED unless `principal` may call `method` with this request."""
    if rule is None:
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"{method} has no access rule, so nobody may call it; add it to "
                        "labelstream.common.auth.RULES")
    allowed = ", ".join(sorted(rule.roles))
    if principal.role not in rule.roles:
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"{method} needs a token of role {allowed}; yours is of role {principal.role}")
    if principal.role == OWNER and rule.project != OWN_PROJECTS:
        project_id = request_project(request, rule.project)
        if not project_id or project_id != principal.project_id:
            raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                            f"your owner token is for project {principal.project_id!r}, not "
                            f"{project_id!r}: name your project in {rule.project}, or ask an admin")


def readable_projects(principal: Principal, project_ids: list[str]) -> list[str]:
    """Of `project_ids`, those `principal` may read under an OWN_PROJECTS rule: every one for an
    admin or a service, the owner's own for an owner, none for anyone else."""
    if principal.role == OWNER:
        return [p for p in project_ids if p == principal.project_id]
    return list(project_ids) if principal.role in (ADMIN, SERVICE) else []


class TokenDirectory:
    """Finds the principal of a token: the admin and service tokens from settings, owners and
    workers in the store (by the token's hash), cached for TOKEN_CACHE_SECONDS."""

    def __init__(self, store: Store | None, admin_token: str = "", service_token: str = "") -> None:
        self.store = store
        self.static = [(hash_token(token), Principal(role, role.value))
                       for token, role in ((admin_token, ADMIN), (service_token, SERVICE)) if token]
        self._cache: TTLCache[str, Principal] = TTLCache(maxsize=TOKEN_CACHE_SIZE, ttl=TOKEN_CACHE_SECONDS)
        self._lock = threading.Lock()

    def identify(self, token: str) -> Principal:
        """UNAUTHENTICATED when the token is missing or unknown."""
        if not token:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            "sign in: send 'authorization: Bearer <token>' metadata (a worker, project "
                            "owner, admin or service token)")
        digest = hash_token(token)
        for known, principal in self.static:
            if hmac.compare_digest(digest, known):
                return principal
        with self._lock:
            found = self._cache.get(digest)
        if found is None:
            found = self._lookup(digest)
            if found is None:
                raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                                "this token is not valid (it may have been rotated); ask your admin for a new one")
            with self._lock:
                self._cache[digest] = found
        return found

    def _lookup(self, digest: str) -> Principal | None:
        if self.store is None:
            return None
        worker = self.store.db.workers.find_one({"token_sha256": digest}, {"_id": 1})
        if worker is not None:
            return Principal(WORKER, worker["_id"])
        owner = self.store.db.project_owners.find_one({"token_sha256": digest},
                                                          {"owner_id": 1, "project_id": 1})
        if owner is not None:
            return Principal(OWNER, owner["owner_id"], owner["project_id"])
        return None

    def forget(self) -> None:
        """Drop cached tokens (after a rotation in this process)."""
        with self._lock:
            self._cache.clear()


_caller: ContextVar[Principal | None] = ContextVar("labelstream_caller", default=None)


def caller() -> Principal:
    """The principal of the RPC being handled (set by AuthInterceptor)."""
    principal = _caller.get()
    if principal is None:
        raise RuntimeError("no authenticated caller: the handler runs without AuthInterceptor")
    return principal


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks every call against RULES before its handler runs; the handler sees `caller()`."""

    def __init__(self, tokens: TokenDirectory, rules: dict[str, Rule] | None = None,
                 open_methods: frozenset[str] = OPEN) -> None:
        self.tokens = tokens
        self.rules = RULES if rules is None else rules
        self.open_methods = open_methods

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in self.open_methods:
            return handler  # unknown methods are UNIMPLEMENTED as before; health stays open
        token = bearer(handler_call_details.invocation_metadata)
        rule = self.rules.get(method)

        def admit(request: object, context: grpc.ServicerContext) -> Principal:
            try:
                principal = self.tokens.identify(token)
                authorize(rule, method, principal, request)
            except AuthError as refusal:
                context.abort(refusal.code, str(refusal))
            return principal

        return _guarded(handler, admit)


def _guarded(handler: grpc.RpcMethodHandler, admit: Callable[[object, grpc.ServicerContext], Principal]):
    """The handler with `admit` run first (with the request, where there is one) and the caller set."""
    if handler.unary_unary:
        behavior = handler.unary_unary

        def unary_unary(request: object, context: grpc.ServicerContext) -> Any:
            reset = _caller.set(admit(request, context))
            try:
                return behavior(request, context)
            finally:
                _caller.reset(reset)
        return handler._replace(unary_unary=unary_unary)
    if handler.unary_stream:
        streaming = handler.unary_stream

        def unary_stream(request: object, context: grpc.ServicerContext) -> Iterator[Any]:
            reset = _caller.set(admit(request, context))
            try:
                yield from streaming(request, context)
            finally:
                _caller.reset(reset)
        return handler._replace(unary_stream=unary_stream)
    # Streamed requests: no single request to read a project from, so only rules without owners pass.
    if handler.stream_unary:
        gathering = handler.stream_unary

        def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            reset = _caller.set(admit(None, context))
            try:
                return gathering(requests, context)
            finally:
                _caller.reset(reset)
        return handler._replace(stream_unary=stream_unary)
    both = handler.stream_stream

    def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        reset = _caller.set(admit(None, context))
        try:
            yield from both(requests, context)
        finally:
            _caller.reset(reset)
    return handler._replace(stream_stream=stream_stream)
