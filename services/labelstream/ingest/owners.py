"""Project owners: a token per (project, owner), of which only the hash is stored (in
`project_owners`, read by every service's token directory, labelstream.common.auth)."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from labelstream.common.auth import Role, hash_token, new_token
from labelstream.common.inputs import unsafe_character
from labelstream.common.store import Store
from labelstream.common.telemetry import now_ms


class OwnerError(ValueError):
    """A refused owner request; `code` names its gRPC status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_id(value: str, what: str) -> None:
    if not value or len(value) > 128 or any(c in value for c in "|: \t\n"):
        raise OwnerError("INVALID_ARGUMENT", f"{what} must be 1-128 characters without '|', ':' or spaces")
    if (unsafe := unsafe_character(value, identifier=True)) is not None:
        raise OwnerError("INVALID_ARGUMENT", f"{what} contains {unsafe}: use printable characters only")


def create_owner(store: Store, project_id: str, owner_id: str, rotate: bool = False) -> str:
    """A token for `owner_id` as an owner of `project_id` (returned once, never stored); with
    `rotate`, a new token for an existing owner (the old one stops working)."""
    check_id(project_id, "project_id")
    check_id(owner_id, "owner_id")
    token = new_token(Role.OWNER)
    owners = store.db.project_owners
    doc = {"_id": f"{project_id}|{owner_id}", "project_id": project_id, "owner_id": owner_id,
           "token_sha256": hash_token(token), "created_ms": now_ms()}
    try:
        owners.insert_one(doc)
    except DuplicateKeyError as exc:
        if not rotate:
            raise OwnerError("ALREADY_EXISTS", f"{owner_id!r} already owns project {project_id!r}; pass "
                                               "rotate_token to issue a new token") from exc
        owners.update_one({"_id": doc["_id"]}, {"$set": {"token_sha256": doc["token_sha256"]}})
    return token
