"""The routing decision: a plain function of a prediction, the project and its routing model."""

from __future__ import annotations

import hashlib

import numpy as np

from labelstream.common.projects import Overflow, RoutingStrategy, response_ranking
from labelstream.common.topics import SCHEMA_VERSION
from labelstream.router.budget import Budget
from labelstream.routing.scoring import RoutingModel, item_context
from labelstream.v1 import events_pb2


def models_agree(prediction: events_pb2.Prediction) -> float:
    """1.0 when every voting model picks the same top label (or there is one model)."""
    tops = {int(np.argmax(vote.probabilities)) for vote in prediction.votes}
    return 1.0 if len(tops) <= 1 else 0.0


def explore_draw(project_id: str, item_id: str) -> float:
    """A uniform number fixed by the item, so a replayed decision is the same decision."""
    digest = hashlib.sha256(f"explore:{project_id}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route(prediction: events_pb2.Prediction, spec: events_pb2.ProjectSpec, routing: RoutingModel | None = None,
          routing_version: int = 0, budget: Budget | None = None) -> events_pb2.RouteDecision:
    probabilities = np.array(prediction.probabilities, dtype=float)
    if len(probabilities) != len(prediction.labels) or not len(probabilities):
        raise ValueError("prediction must carry one probability per label")
    top = int(probabilities.argmax())
    strategy = spec.routing_strategy
    decision = events_pb2.RouteDecision(
        schema_version=SCHEMA_VERSION, project_id=prediction.project_id, item_id=prediction.item_id,
        label=prediction.labels[top], confidence=float(probabilities[top]), model_name=prediction.model_name,
        model_version=prediction.model_version, ingested_at_ms=prediction.ingested_at_ms, strategy=strategy,
        head_version=prediction.head_version or prediction.model_version,
        target_accuracy=spec.target_accuracy,
        ranking=response_ranking(spec, probabilities.tolist(), prediction.labels[top]))
    no_score_accepted = strategy != RoutingStrategy.THRESHOLD
    if strategy == RoutingStrategy.THRESHOLD:
        decision.score = decision.confidence
        decision.threshold = spec.auto_accept_threshold
        auto = decision.score >= decision.threshold
        decision.reason = f"top probability {decision.score:.3f} {'>=' if auto else '<'} threshold " \
                          f"{decision.threshold:.3f}"
    elif routing is None or routing.n_verified < spec.min_verified:
        have = routing.n_verified if routing else 0
        auto = False
        decision.reason = f"cold start: {have} of {spec.min_verified} verified items needed before auto-acceptance"
    else:
        context = item_context([len(prediction.text)], [models_agree(prediction)])
        decision.score = float(routing.score(probabilities[None, :], context)[0])
        chosen = routing.thresholds.threshold(top)
        no_score_accepted = routing.thresholds.accepts_nothing(len(probabilities))
        decision.routing_model_version = routing_version
        decision.verified_items = routing.n_verified
        decision.calibration_method = routing.calibrator.method if routing.calibrator else ""
        decision.accuracy_lower_bound = chosen.lower_bound
        if chosen.threshold == float("inf"):
            auto = False
            decision.threshold = 1.0
            decision.reason = (f"no threshold for {decision.label!r} reaches the target {spec.target_accuracy:.3f} "
                               f"at {spec.confidence_level:.0%} confidence yet")
        else:
            decision.threshold = chosen.threshold
            auto = decision.score >= chosen.threshold
            decision.reason = (f"{strategy} score {decision.score:.3f} {'>=' if auto else '<'} class threshold "
                               f"{chosen.threshold:.3f} (lower bound {chosen.lower_bound:.3f} on "
                               f"{chosen.accepted} verified items)")
    drawn = in_exploration_draw(prediction, spec)
    decision.calibration_sample = drawn or no_score_accepted
    if (not auto and not decision.calibration_sample and spec.overlap_margin and 0 < decision.threshold <= 1.0
            and decision.score >= decision.threshold - spec.overlap_margin):
        decision.model_votes = True  # never on the sample: its labels must be people's alone
        decision.reason += f"; within {spec.overlap_margin:.2f} of the threshold: the model votes beside people"
    return settle(decision, spec, auto, drawn, budget)


def in_exploration_draw(prediction: events_pb2.Prediction, spec: events_pb2.ProjectSpec) -> bool:
    """Whether the item is in the project's exploration share, drawn by its id alone.

    With the items routed while no score could be accepted (everything went to people), these are
    the router's calibration sample: the verified items that test thresholds. Never chosen by score,
    they are exchangeable with the stream; items sent to people for a low score are not, and once
    the confident ones are auto-accepted a test on every verified item sees only the hard ones above
    the threshold, fails, and the router falls back to all-human (the demo's waves went 6%, 0%, 34%
    auto that way)."""
    return bool(spec.explore_fraction) and explore_draw(prediction.project_id, prediction.item_id) < \
        spec.explore_fraction


def settle(decision: events_pb2.RouteDecision, spec: events_pb2.ProjectSpec, auto: bool, drawn: bool,
           budget: Budget | None, overflow_may_accept: bool = True) -> events_pb2.RouteDecision:
    """The route of an item the model would (`auto`) or would not take alone: an item of the
    exploration draw goes to people, and is never auto-accepted by the budget either (the sample
    must be verified to stay random); otherwise a binding budget overflows as the project says
    (`overflow_may_accept`: whether the model's answer may stand alone at all)."""
    if auto and drawn:
        auto = False
        decision.explored = True
        decision.reason += f"; sent to people anyway to keep accuracy measured ({spec.explore_fraction:.0%} sample)"
    if not auto and budget is not None and not drawn:
        binding = budget.binding()
        if binding:
            decision.budget = binding
            if spec.overflow == Overflow.AUTO and overflow_may_accept:
                auto = True
                decision.reason += f"; auto-accepted because the {binding}"
            elif spec.overflow == Overflow.WAIT:
                decision.deferred = True
                decision.reason += f"; waits for people because the {binding} (most uncertain released first)"
            else:  # "people": sent anyway; the dispatcher serves the most uncertain items first
                decision.reason += f"; sent to people although the {binding}"
    decision.route = events_pb2.ROUTE_AUTO if auto else events_pb2.ROUTE_HUMAN
    return decision


def human_task(prediction: events_pb2.Prediction, decision: events_pb2.RouteDecision,
               spec: events_pb2.ProjectSpec, task_id: str) -> events_pb2.HumanTask:
    """Uncertain items first: priority is how far the model is from certainty. `overlap` counts
    people's answers; when the model votes, it is the one vote more."""
    certainty = decision.score if decision.score else decision.confidence
    human_votes = max(1, spec.overlap_near_threshold - 1) if decision.model_votes else spec.overlap
    if prediction.annotators:  # no more answers than the named annotators can give
        human_votes = min(human_votes, len(prediction.annotators))
    return events_pb2.HumanTask(
        schema_version=SCHEMA_VERSION, project_id=prediction.project_id, item_id=prediction.item_id,
        task_id=task_id, text=prediction.text, labels=list(prediction.labels), overlap=human_votes,
        priority=1.0 - certainty, model_label=decision.label, model_confidence=certainty,
        ingested_at_ms=prediction.ingested_at_ms, model_votes=decision.model_votes,
        model_name=decision.model_name, model_version=decision.model_version, responses=prediction.responses,
        annotators=prediction.annotators)
