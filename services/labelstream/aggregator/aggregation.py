"""Aggregation: an item's valid votes to a final label (or a request for more votes), with the
project's skill model re-fitted in the background, corrections when a fit or an excluded worker
changes a label, and the ids under which corrections go through the outbox."""

from __future__ import annotations

import contextlib
import hashlib
import threading

from pymongo.errors import DuplicateKeyError

from labelstream.aggregator import multilabel
from labelstream.aggregator.finalize import changed, finalize, human_final, load_final, revise, with_label_set
from labelstream.common.dead_letters import InvalidMessage
from labelstream.common.producer import Outgoing
from labelstream.common.projects import AggregationMethod, is_multi_label, response_ranking
from labelstream.common.store import Store, insert_once, item_key, vote_key, worker_snapshot_write
from labelstream.common.topics import SCHEMA_VERSION, Topics
from labelstream.crowd.decide import Decision, SkillModel, decide, fit_project
from labelstream.crowd.quality import gold_accuracy
from labelstream.v1 import events_pb2


def excluded_key(project_id: str, worker_id: str) -> str:
    return f"{project_id}|{worker_id}"


class Aggregation:
    """An item's votes to a final label, with the project's skill model kept fresh in the
    background (EM re-fit when votes arrived; gold accuracies from the dispatcher's snapshots)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        self.skills: dict[str, SkillModel] = {}
        self.multi_skills: dict[str, multilabel.MultiLabelSkill | None] = {}  # multi_label projects' fits
        # Projects whose votes changed since their last fit (votes this process stored, workers it
        # excluded); None until the first re-fit, which fits every project once. Counting each
        # project's votes every second instead cost the local store a scan per project per second,
        # the bulk of its load once a few dozen projects exist.
        self.dirty: set[str] | None = None
        self.lock = threading.Lock()

    def votes_changed(self, project_id: str) -> None:
        with self.lock:
            if self.dirty is not None:
                self.dirty.add(project_id)

    def record_vote(self, response: events_pb2.HumanResponse) -> list[Outgoing]:
        """Store a worker's answer (once: a replayed vote is not counted twice) and decide its
        item: a final label, a request for more votes, or nothing yet."""
        spec = self.store.get_project(response.project_id)
        if spec is None:
            raise InvalidMessage("unknown_project", f"project {response.project_id!r} does not exist",
                                 response.project_id, response.item_id)
        with contextlib.suppress(DuplicateKeyError):  # a replayed vote
            self.db.votes.insert_one({
                "_id": vote_key(response.task_id, response.worker_id), "task_id": response.task_id,
                "worker_id": response.worker_id, "project_id": response.project_id,
                "item_id": response.item_id, "label": response.label, "at_ms": response.answered_at_ms})
        self.votes_changed(response.project_id)  # after the insert: a re-fit then sees it
        task, _ = insert_once(self.db.vote_requests, {
            "_id": response.task_id, "project_id": response.project_id, "item_id": response.item_id,
            "ingested_at_ms": response.ingested_at_ms, "task_overlap": response.task_overlap,
            "max_answers": response.max_answers,
            "model_label": response.model_label, "model_confidence": response.model_confidence,
            "model_name": response.model_name, "model_version": response.model_version,
            "votes_needed": 0, "requested_overlap": 0, "final": False})
        current = self.db.final_labels.find_one({"_id": item_key(response.project_id, response.item_id)})
        if current is not None and not current.get("reopened"):
            return finalize(self.store, load_final(current))  # re-publishes only if never acknowledged
        return self.evaluate(spec, task)

    def note_worker(self, event: events_pb2.QualityEvent) -> None:
        """A worker's record changed at the dispatcher: keep its gold counts for the next fit."""
        self.db.worker_skills.bulk_write([worker_snapshot_write(event)])
        if event.worker.gold_correct + event.worker.gold_wrong:
            self.votes_changed(event.project_id)  # gold accuracies weigh the votes: fit again

    def excluded(self, project_id: str) -> set[str]:
        return {d["worker_id"] for d in self.db.excluded_workers.find({"project_id": project_id})}

    def skill(self, spec: events_pb2.ProjectSpec) -> SkillModel:
        with self.lock:
            model = self.skills.get(spec.project_id)
        return model if model is not None else SkillModel(list(spec.labels))

    def refit(self) -> list[Outgoing]:
        """Re-fit every project whose votes changed; corrections for labels a fit overturns."""
        out: list[Outgoing] = []
        with self.lock:
            changed = set(self.store.project_ids()) if self.dirty is None else self.dirty
            self.dirty = set()
        for project_id in sorted(changed):
            spec = self.store.get_project(project_id)
            if spec is None:
                continue
            excluded = self.excluded(spec.project_id)
            votes = [(v["item_id"], v["worker_id"], v["label"]) for v in self.db.votes.find(
                {"project_id": spec.project_id}, {"item_id": 1, "worker_id": 1, "label": 1})
                if v["worker_id"] not in excluded]
            if not votes:
                continue
            if is_multi_label(spec):  # label by label: aggregator/multilabel.py
                with self.lock:
                    previous = self.multi_skills.get(spec.project_id)
                fitted_sets = multilabel.fit_project(spec, votes, previous)
                with self.lock:
                    self.multi_skills[spec.project_id] = fitted_sets
                if fitted_sets is not None:
                    out += self.correct_finals(spec, votes)
                continue
            gold = {d["worker_id"]: gold_accuracy(d) for d in self.db.worker_skills.find(
                {"project_id": spec.project_id, "status": {"$ne": "blocked"}})}
            skill = SkillModel(list(spec.labels), gold_accuracy={w: a for w, a in gold.items() if a == a})
            fitted = None
            if AggregationMethod(spec.aggregation).has_posterior and votes:
                # From scratch, not warm-started from the last fit: EM has several optima and a warm
                # start keeps to the one the early answers chose, so labels would depend on the order
                # answers came in (integration_tests/test_refit_order.py).
                fitted = fit_project(list(spec.labels), votes, spec.aggregation)
                skill.fit, skill.fit_workers = fitted.model, fitted.workers
            with self.lock:
                self.skills[spec.project_id] = skill
            if fitted is not None:
                out += self.correct_finals(spec, votes)
        return out

    def correct_finals(self, spec: events_pb2.ProjectSpec, votes: list[tuple[str, str, str]]) -> list[Outgoing]:
        """Re-evaluate the final labels that the new fit would change (two queries for the
        project, then store work only for those)."""
        finals = {f["item_id"]: f for f in self.db.final_labels.find(
            {"project_id": spec.project_id}, {"item_id": 1, "label": 1, "workers": 1, "published": 1, "reopened": 1})}
        by_item: dict[str, list[tuple[str, str]]] = {}
        for item, worker, label in votes:
            by_item.setdefault(item, []).append((worker, label))
        out: list[Outgoing] = []
        for task in self.db.vote_requests.find({"project_id": spec.project_id, "final": True}):
            current = finals.get(task["item_id"])
            item_votes = by_item.get(task["item_id"], [])
            decision, _ = self.decision_for(spec, task, item_votes)
            settled = (current is not None and current.get("published") and not current.get("reopened")
                       and set(current.get("workers", [])) == {w for w, _ in item_votes}
                       and decision.label == current.get("label"))
            if not settled:
                out += self.evaluate(spec, task, reason="re-fit", from_refit=True)
        return out

    def decision_for(self, spec: events_pb2.ProjectSpec, task: dict, votes: list[tuple[str, str]],
                     held: int = 0) -> tuple[Decision, int]:
        """The decision on a task's valid votes, and whether the model is one of the voters.
        `held`: excluded answers (of blocked workers), which a task with named annotators cannot
        replace: it decides on what its annotators can still give."""
        model_vote = (task["model_label"], task["model_confidence"]) if task.get("model_label") else None
        model_votes = int(model_vote is not None)
        required = max(task["task_overlap"] or spec.overlap + model_votes, task.get("votes_needed", 0))
        most = max(spec.max_overlap, spec.overlap) + model_votes
        if task.get("max_answers"):
            most = min(most, max(1, task["max_answers"] - held) + model_votes)
            required = min(required, most)
        if is_multi_label(spec):  # the router never lets the model vote on a multi_label item
            with self.lock:
                skill = self.multi_skills.get(spec.project_id)
            return multilabel.decide(spec, skill, votes, required, most), model_votes
        decision = decide(spec.aggregation, self.skill(spec), votes, model_vote, required, most,
                          spec.posterior_bound)
        return decision, model_votes

    def evaluate(self, spec: events_pb2.ProjectSpec, task: dict, reason: str = "",
                 from_refit: bool = False) -> list[Outgoing]:
        """Decide the task's item from its valid votes: final label, correction, or more votes.
        `from_refit`: a new fit re-decides a settled item; it does not reopen one it is unsure of.
        A decision it does make stands even below posterior_bound: that happens only when every
        vote the item may get is in, and then the fit on every answer is the better judge than
        the fit of the moment the last one arrived (keeping that one made the labels depend on the
        order answers came in)."""
        excluded = self.excluded(task["project_id"])
        all_votes = list(self.db.votes.find({"task_id": task["_id"]}).sort("_id", 1))
        votes = [(v["worker_id"], v["label"]) for v in all_votes if v["worker_id"] not in excluded]
        decision, model_votes = self.decision_for(spec, task, votes, held=len(all_votes) - len(votes))
        key = item_key(task["project_id"], task["item_id"])
        current = self.db.final_labels.find_one({"_id": key})
        if decision.label is not None:
            final = human_final(task["project_id"], task["item_id"], task["ingested_at_ms"], decision.label,
                                decision.posterior, [w for w, _ in votes], spec.aggregation, bool(model_votes))
            if model_votes:
                final.model_name, final.model_version = task.get("model_name", ""), task.get("model_version", "")
            final.ranking.extend(response_ranking(spec, decision.scores, decision.label))
            with_label_set(final, spec)
            self.db.vote_requests.update_one({"_id": task["_id"]}, {"$set": {"final": True}})
            if current is None:
                return finalize(self.store, final)
            if current.get("reopened") or changed(current, final):
                return revise(self.store, current, final, current.get("reopen_reason") or reason)
            return finalize(self.store, load_final(current)) if not current.get("published") else []
        if current is not None and reason and not from_refit:
            self.db.final_labels.update_one({"_id": key}, {"$set": {"reopened": True, "reopen_reason": reason}})
        return self.request_votes(task, decision.votes_needed - model_votes, held=len(all_votes) - len(votes))

    def request_votes(self, task: dict, humans_needed: int, held: int) -> list[Outgoing]:
        """Ask the dispatcher for more human answers; `held` excluded answers still hold their
        slots there."""
        overlap = humans_needed + held
        if overlap <= task.get("requested_overlap", 0):
            return []
        self.db.vote_requests.update_one({"_id": task["_id"]}, {"$set": {
            "requested_overlap": overlap, "votes_needed": humans_needed + bool(task.get("model_label"))}})
        more = events_pb2.HumanTask(schema_version=SCHEMA_VERSION, project_id=task["project_id"],
                                    item_id=task["item_id"], task_id=task["_id"], overlap=overlap)
        return [Outgoing(Topics.TASKS_HUMAN, item_key(task["project_id"], task["item_id"]), more)]

    def exclude_worker(self, project_id: str, worker_id: str, reason: str) -> list[Outgoing]:
        """A blocked worker: their votes stop counting; unfinished items get replacement votes and
        finished ones are re-aggregated (a new version when the label or its voters change)."""
        with contextlib.suppress(DuplicateKeyError):
            self.db.excluded_workers.insert_one({"_id": excluded_key(project_id, worker_id),
                                                 "project_id": project_id, "worker_id": worker_id})
        self.votes_changed(project_id)
        spec = self.store.get_project(project_id)
        if spec is None:
            return []
        out: list[Outgoing] = []
        for vote in self.db.votes.find({"project_id": project_id, "worker_id": worker_id}):
            task = self.db.vote_requests.find_one({"_id": vote["task_id"]})
            if task is not None:
                out += self.evaluate(spec, task, reason=f"worker {worker_id} blocked: {reason}")
        return out


def correction_id(out: Outgoing) -> str:
    message = out.message
    if isinstance(message, events_pb2.FinalLabel):
        return f"final|{out.key}|{message.version}"
    if isinstance(message, events_pb2.HumanTask):
        return f"more_votes|{message.task_id}|{message.overlap}"
    return f"{out.topic}|{out.key}|{hashlib.sha256(message.SerializeToString()).hexdigest()[:16]}"
