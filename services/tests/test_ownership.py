"""One owner per collection: each service declares the collections it owns (<service>/storage.py),
no two services declare the same one, no service's code writes a collection it does not own, and
the ownership page (services/README.md) says the same."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "labelstream"
SERVICES = ("ingest", "inference", "router", "dispatcher", "aggregator", "monitor")
WRITES = {"insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one", "delete_many",
          "bulk_write", "find_one_and_update", "find_one_and_replace", "find_one_and_delete", "create_index", "drop",
          "insert_new", "insert_once"}


def owned(service: str) -> set[str]:
    collections = set(importlib.import_module(f"labelstream.{service}.storage").COLLECTIONS)
    return collections | {f"outbox_{service}"}


def collection_of(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The collection an expression names: `...db.name`, `...db["name"]`, or a name/attribute that an
    assignment in the same module bound to one (self.responses = store.db.responses)."""
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Attribute) and node.value.attr == "db" or \
                isinstance(node.value, ast.Name) and node.value.id == "db":
            return node.attr
        return aliases.get(node.attr)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
            isinstance(node.value, ast.Attribute) and node.value.attr == "db":
        return str(node.slice.value)
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    return None


def module_aliases(tree: ast.AST) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            name = collection_of(node.value, {}) if node.value is not None else None
            for target in targets:
                if name is not None and isinstance(target, ast.Attribute | ast.Name):
                    aliases[target.attr if isinstance(target, ast.Attribute) else target.id] = name
    return aliases


def written_collections(path: Path) -> dict[str, list[int]]:
    """Every collection a module writes, with the lines."""
    tree = ast.parse(path.read_text())
    aliases = module_aliases(tree)
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        target = None
        if isinstance(func, ast.Attribute) and func.attr in WRITES:
            target = collection_of(func.value, aliases)
        elif isinstance(func, ast.Name) and func.id in {"insert_new", "insert_once"} and node.args:
            target = collection_of(node.args[0], aliases)
        if target is not None:
            found.setdefault(target, []).append(node.lineno)
    return found


def named_collections(path: Path) -> dict[str, list[int]]:
    """Every collection a module names at all (reads included), with the lines."""
    tree = ast.parse(path.read_text())
    aliases = module_aliases(tree)
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Subscript) and not isinstance(getattr(node, "ctx", None), ast.Store):
            name = collection_of(node, aliases)
            if name is not None:
                found.setdefault(name, []).append(node.lineno)
    return found


def test_no_two_services_own_a_collection():
    seen: dict[str, str] = {}
    for service in SERVICES:
        for collection in owned(service):
            assert collection not in seen, f"{collection} is declared by {seen[collection]} and {service}"
            seen[collection] = service


def foreign_collections(service: str, scan: Callable[[Path], dict[str, list[int]]]) -> dict[str, str]:
    """Collections of other services that `scan` finds in the service's code, by file and lines."""
    mine = owned(service)
    return {f"{path.relative_to(PACKAGE)}:{lines}": collection
            for path in sorted((PACKAGE / service).rglob("*.py"))
            for collection, lines in scan(path).items() if collection not in mine}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_writes_only_the_collections_it_owns(service: str):
    foreign = foreign_collections(service, written_collections)
    assert not foreign, f"{service} writes collections it does not own: {foreign}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reads_no_collection_of_another(service: str):
    """Services learn what others own through events or the owner's API; the one shared read is
    a project's spec, through labelstream.common.store.Store (get_project, project_ids)."""
    foreign = foreign_collections(service, named_collections)
    assert not foreign, f"{service} reads collections it does not own: {foreign}"


def test_the_scan_sees_writes_through_aliases_and_helpers(tmp_path: Path):
    """Not vacuous: writes of every shape the services use are found."""
    module = tmp_path / "m.py"
    module.write_text(
        "class Pool:\n"
        "    def __init__(self, store):\n"
        "        self.responses = store.db.responses\n"
        "    def go(self, db, store):\n"
        "        self.responses.update_many({}, {})\n"
        "        db.gold.insert_one({})\n"
        "        store.db['outbox_x'].insert_one({})\n"
        "        insert_new(store.db.tasks, [])\n"
        "        store.db.items.find_one({})\n")
    assert set(written_collections(module)) == {"responses", "gold", "outbox_x", "tasks"}
    assert set(named_collections(module)) == {"responses", "gold", "outbox_x", "tasks", "items"}


def test_the_ownership_page_lists_every_service_s_collections():
    page = (PACKAGE.parent / "README.md").read_text()
    table = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in SERVICES:
            table[cells[0]] = set(re.findall(r"`([a-z_<>]+)`", cells[1]))
    assert set(table) == set(SERVICES), "the page's table has a row per service"
    for service in SERVICES:
        declared = set(importlib.import_module(f"labelstream.{service}.storage").COLLECTIONS)
        assert table[service] - {"outbox_<service>"} - {f"outbox_{service}"} == declared, service
