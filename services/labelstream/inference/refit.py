"""Continuous improvement of the encoder model: once a project has enough new human-verified
labels, a new Triton model version is written whose training set for that project is its
few-shot examples plus those labels, and Triton is told to load it (explicit model control).
Triton serves the previous versions until the new one is ready; predictions name their version.

A version directory carries model.py and training/<project_id>.json for every project refit so
far, so each version is self-contained and a project can pin any version still loaded.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from pymongo.errors import DuplicateKeyError

from labelstream.common.projects import TaskKind, parse_label_set
from labelstream.common.store import Store, item_key
from labelstream.common.telemetry import log_fields, now_ms
from labelstream.models.contract import preference_text
from labelstream.v1 import events_pb2

log = logging.getLogger(__name__)
KEEP_LATEST = 3


def versions(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def refit_interval(spec: events_pb2.ProjectSpec, refits_done: int) -> float:
    """New verified labels the next refit waits for: head_refit_every, times head_refit_growth
    for every refit already done (projects stored before the field existed read 0: no growth)."""
    return spec.head_refit_every * max(1.0, spec.head_refit_growth) ** refits_done


def training_text(prediction: dict) -> str:
    """What the head learns from: the item's text, or a preference item's prompt and responses as
    the model's TEXT row."""
    if prediction.get("responses"):
        return preference_text(prediction["text"], [r["text"] for r in prediction["responses"]])
    return prediction["text"]


class HeadRefitter:
    def __init__(self, store: Store, repository: Path | None, load_model) -> None:
        self.store = store
        self.repository = repository
        self.load_model = load_model  # callable(model_name): asks Triton to load new versions
        self._head_versions: dict[tuple[str, str, str], str] = {}

    def head_version(self, model: str, project_id: str, served: str) -> str:
        """The version at which `project_id`'s head last changed, as served in version `served`
        ("1", the base, when the project was never refit)."""
        if self.repository is None or not served.isdigit():
            return served
        key = (model, project_id, served)
        if key not in self._head_versions:
            training = self.repository / model / served / "training" / f"{project_id}.json"
            version = json.loads(training.read_text()).get("version", served) if training.exists() else 1
            self._head_versions[key] = str(version)
        return self._head_versions[key]

    def add_verified(self, project_id: str, item_id: str, label: str) -> bool:
        """Remember a verified label with the item's text (from our prediction of it)."""
        key = item_key(project_id, item_id)
        prediction = self.store.db.predictions.find_one({"_id": key}, {"text": 1, "labels": 1, "responses": 1})
        if prediction is None:
            return False
        labels = parse_label_set(label)  # a multi_label set's key: each of its labels must be the project's
        if (label not in prediction.get("labels", [])
                and (labels is None or not set(labels) <= set(prediction.get("labels", [])))):
            return False
        try:
            self.store.db.head_training.insert_one({"_id": key, "project_id": project_id, "item_id": item_id,
                                                   "text": training_text(prediction), "label": label,
                                                   "at_ms": now_ms()})
        except DuplicateKeyError:
            return False
        return True

    def refit_if_due(self, spec: events_pb2.ProjectSpec) -> int:
        """Write and load a new version when enough new verified labels exist; returns it (0: none)."""
        if not spec.head_refit_every or self.repository is None:
            return 0
        model_dir = self.repository / spec.model
        if not model_dir.is_dir():
            return 0
        verified = list(self.store.db.head_training.find({"project_id": spec.project_id}).sort("_id", 1))
        state_key = f"{spec.model}|{spec.project_id}"
        state = self.store.db.head_refits.find_one({"_id": state_key}) or {"verified": 0}
        if len(verified) - state["verified"] < refit_interval(spec, state.get("refits", 0)):
            return 0
        # Claim this refit: of several inference replicas, one writes the version.
        claimed = self.store.db.head_refits.update_one(
            {"_id": state_key, "verified": state["verified"]},
            {"$set": {"verified": len(verified), "refits": state.get("refits", 0) + 1}})
        if not claimed.matched_count:
            try:
                self.store.db.head_refits.insert_one({"_id": state_key, "verified": len(verified), "refits": 1})
            except DuplicateKeyError:
                return 0  # another replica is on it
        version = self._write_version(model_dir, spec, verified)
        self._prune(model_dir, spec.model)
        self.load_model(spec.model)
        log.info("head refit served as a new model version", extra=log_fields(
            project_id=spec.project_id, model=spec.model, version=version, verified=len(verified)))
        return version

    def _prune(self, model_dir: Path, model: str) -> None:
        """Keep version 1, the newest KEEP_LATEST and every pinned version; Triton unloads the rest."""
        specs = [self.store.get_project(project_id) for project_id in self.store.project_ids({"model": model})]
        pinned = {int(spec.model_version) for spec in specs if spec is not None and spec.model_version.isdigit()}
        on_disk = versions(model_dir)
        keep = {1, *on_disk[-KEEP_LATEST:], *pinned}
        for version in on_disk:
            if version not in keep:
                shutil.rmtree(model_dir / str(version))

    def _write_version(self, model_dir: Path, spec: events_pb2.ProjectSpec, verified: list[dict]) -> int:
        latest = versions(model_dir)[-1]
        version = latest + 1
        with tempfile.TemporaryDirectory(dir=model_dir, prefix=".new-") as tmp:
            staging = Path(tmp) / "version"
            shutil.copytree(model_dir / str(latest), staging, ignore=shutil.ignore_patterns("__pycache__"))
            training = staging / "training"
            training.mkdir(exist_ok=True)
            if spec.task == TaskKind.MULTI_LABEL:  # the one-vs-rest head learns sets ("labels")
                examples = [{"text": e.text, "labels": list(e.labels)} for e in spec.examples]
                examples += [{"text": v["text"], "labels": parse_label_set(v["label"]) or []} for v in verified]
            else:
                examples = [{"text": e.text, "label": e.label} for e in spec.examples]
                examples += [{"text": v["text"], "label": v["label"]} for v in verified]
            (training / f"{spec.project_id}.json").write_text(json.dumps({
                "project_id": spec.project_id, "labels": list(spec.labels), "examples": examples, "task": spec.task,
                "version": version}))  # copies into later versions keep this: the head's own version
            staging.rename(model_dir / str(version))  # appears whole, or not at all
        return version
