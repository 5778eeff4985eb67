"""The dashboard's computations on known inputs, and its web API on a small in-memory store."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from pymongo.errors import PyMongoError

from labelstream.common.auth import TokenDirectory
from labelstream.monitor.dashboard import (
    accuracy_curve,
    agreement_over_time,
    dashboard_data,
    reliability_bins,
    throughput_latency,
    window_edges,
    window_index,
    worker_rows,
)
from labelstream.monitor.dashboard_web import DashboardWeb
from labelstream.v1 import events_pb2


def item(confidence: float, gold: str, model: str, human: str | None = None) -> dict:
    return {"confidence": confidence, "gold": gold, "model_label": model, "human_label": human}


# Windows --------------------------------------------------------------------------------------

def test_window_edges_split_the_span_evenly_and_include_the_end():
    edges = window_edges([1000, 2000, 1500], 4)
    assert edges == [1000, 1250, 1500, 1750, 2000]
    assert [window_index(t, edges) for t in (1000, 1249, 1250, 1999, 2000)] == [0, 0, 1, 3, 3]


def test_window_edges_of_nothing_or_one_instant():
    assert window_edges([], 10) == []
    edges = window_edges([5000], 10)
    assert edges[0] == 5000 and edges[-1] > 5000
    assert window_index(5000, edges) == 0


# Accuracy against the human fraction ----------------------------------------------------------

def test_accuracy_curve_sends_the_least_confident_items_to_people_first():
    items = [item(0.95, "a", "a"), item(0.9, "b", "b"),
             item(0.6, "a", "b", human="a"),    # wrong model, people fixed it
             item(0.55, "b", "a", human=None)]  # wrong model, people never saw it
    curve = accuracy_curve(items, points=5)
    assert [p["human_fraction"] for p in curve] == [0, 0.25, 0.5, 0.75, 1]
    assert [p["items_to_people"] for p in curve] == [0, 1, 2, 3, 4]
    # 0.55 goes first but has no human label, so it keeps the (wrong) model label: no gain
    assert [p["accuracy"] for p in curve] == [0.5, 0.5, 0.75, 0.75, 0.75]
    assert [p["human_labels_known"] for p in curve] == [0, 0, 1, 1, 1]
    assert curve[0]["confidence_threshold"] == 0.55 and curve[-1]["confidence_threshold"] is None


def test_accuracy_curve_counts_wrong_human_labels_against_people():
    curve = accuracy_curve([item(0.6, "a", "a", human="b"), item(0.9, "a", "a")], points=3)
    assert [p["accuracy"] for p in curve] == [1.0, 0.5, 0.5]


def test_accuracy_curve_of_no_items_is_unknown_not_an_error():
    curve = accuracy_curve([], points=3)
    assert [p["accuracy"] for p in curve] == [None, None, None]


# Reliability ----------------------------------------------------------------------------------

def test_reliability_bins_and_ece():
    conf = [0.55, 0.58, 0.92, 0.96, 1.0]
    right = [True, False, True, True, True]
    result = reliability_bins(conf, right, bins=10)
    bins = result["bins"]
    assert len(bins) == 10 and result["items"] == 5
    assert bins[5]["count"] == 2 and bins[5]["accuracy"] == 0.5
    assert bins[5]["mean_confidence"] == pytest.approx(0.565)
    assert bins[9]["count"] == 3 and bins[9]["accuracy"] == 1.0  # 1.0 falls in the last bin
    assert bins[0] == {"lower": 0.0, "upper": 0.1, "count": 0, "mean_confidence": None, "accuracy": None}
    expected = 2 / 5 * abs(0.5 - 0.565) + 3 / 5 * abs(1.0 - (0.92 + 0.96 + 1.0) / 3)
    assert result["ece"] == pytest.approx(expected)


def test_reliability_of_nothing():
    result = reliability_bins([], [])
    assert result["ece"] is None and all(b["count"] == 0 for b in result["bins"])


# Agreement over time --------------------------------------------------------------------------

def response(item_id: str, worker: str, label: str, at_ms: int) -> dict:
    return {"item_id": item_id, "worker_id": worker, "label": label, "at_ms": at_ms, "duration_ms": 1000}


def test_agreement_per_window_keeps_an_items_answers_together():
    responses = [
        # early: two items, everyone agrees, two labels in use -> perfect agreement
        response("i1", "w1", "a", 0), response("i1", "w2", "a", 10), response("i1", "w3", "a", 20),
        response("i2", "w1", "b", 30), response("i2", "w2", "b", 40), response("i2", "w3", "b", 50),
        # late: i3's first answer is early in time but the item finished late; split votes
        response("i3", "w1", "a", 60), response("i3", "w2", "b", 1000), response("i3", "w3", "a", 1000),
        response("i4", "w1", "b", 990), response("i4", "w2", "a", 995), response("i4", "w3", "b", 1000),
    ]
    rows = agreement_over_time(responses, count=2)
    assert [(r["items"], r["responses"]) for r in rows] == [(2, 6), (2, 6)]
    assert rows[0]["krippendorff_alpha"] == pytest.approx(1.0)
    assert rows[0]["fleiss_kappa"] == pytest.approx(1.0)
    assert rows[1]["krippendorff_alpha"] < 0.5 and rows[1]["fleiss_kappa"] < 0.5


def test_agreement_windows_without_data_are_null():
    rows = agreement_over_time([response("i1", "w1", "a", 0), response("i2", "w1", "a", 100)], count=3)
    assert all(r["krippendorff_alpha"] is None and r["fleiss_kappa"] is None for r in rows)
    assert agreement_over_time([]) == []


# Throughput and latency -----------------------------------------------------------------------

def test_throughput_and_latency_per_window():
    finals = [{"ingested_at_ms": t - lat, "finalized_at_ms": t} for t, lat in
              [(0, 100), (100, 300), (900, 1000), (1000, 2000), (1000, 3000)]]
    rows = throughput_latency(finals, count=2)
    assert [r["final_labels"] for r in rows] == [2, 3]
    assert rows[0]["per_second"] == pytest.approx(2 / 0.5)
    assert rows[0]["latency_p50_ms"] == 200 and rows[1]["latency_p50_ms"] == 2000
    assert rows[1]["latency_p95_ms"] == pytest.approx(2900)
    assert throughput_latency([]) == []


# Workers --------------------------------------------------------------------------------------

def test_worker_rows():
    records = [{"worker_id": "w2", "status": "blocked", "gold_correct": 1, "gold_wrong": 3, "tasks_done": 9,
                "earnings": 0.45, "fraud_signals": ["straight_lining"], "blocked_reason": "gold accuracy"},
               {"worker_id": "w1", "status": "active", "gold_correct": 0, "gold_wrong": 0, "tasks_done": 2,
                "earnings": 0.1, "fraud_signals": []}]
    responses = [response("i1", "w1", "a", 0) | {"duration_ms": d} for d in (1000, 3000, 2000)]
    rows = worker_rows(records, responses)
    assert [r["worker_id"] for r in rows] == ["w1", "w2"]
    assert rows[0]["gold_accuracy"] is None and rows[0]["median_seconds"] == 2.0
    assert rows[1]["gold_accuracy"] == pytest.approx(2 / 6) and rows[1]["gold_answered"] == 4
    assert rows[1]["median_seconds"] is None and rows[1]["fraud_signals"] == ["straight_lining"]


# dashboard_data and the web API on an in-memory store -----------------------------------------

class FakeCollection:
    """Just enough of a pymongo collection: find/find_one by equality; projections ignored."""

    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def find(self, query: dict | None = None, _projection: dict | None = None) -> list[dict]:
        return [dict(d) for d in self.docs if all(d.get(k) == v for k, v in (query or {}).items())]

    def find_one(self, query: dict, projection: dict | None = None) -> dict | None:
        found = self.find(query, projection)
        return found[0] if found else None


class FakeDb:
    def __init__(self, **collections: list[dict]) -> None:
        self.collections = {name: FakeCollection(docs) for name, docs in collections.items()}

    def __getattr__(self, name: str) -> FakeCollection:
        return self.collections.setdefault(name, FakeCollection([]))


class FakeStore:
    """Just enough of labelstream.common.store.Store: the monitor's collections and the projects."""

    def __init__(self, db: FakeDb, projects: dict[str, list[str]]) -> None:
        self.db = db
        self.projects = projects

    def project_ids(self, where: dict | None = None) -> list[str]:
        return sorted(self.projects)

    def get_project(self, project_id: str) -> events_pb2.ProjectSpec | None:
        labels = self.projects.get(project_id)
        return None if labels is None else events_pb2.ProjectSpec(project_id=project_id, labels=labels)


def small_store() -> FakeDb:
    p = "proj"
    events = []
    for i, (gold, model, route) in enumerate([("a", "a", "auto"), ("b", "b", "auto"),
                                              ("a", "b", "human"), ("b", "b", "human")]):
        events.append({"kind": "item_accepted", "project_id": p, "item_id": f"i{i}", "gold_label": gold,
                       "at_ms": 1000 * i})
        label = model if route == "auto" else gold
        events.append({"kind": "final_label", "project_id": p, "item_id": f"i{i}", "label": label,
                       "source": route, "version": 1, "ingested_at_ms": 1000 * i,
                       "finalized_at_ms": 1000 * i + 500, "at_ms": 1000 * i + 500})
        if route == "human":
            events += [{"kind": "human_response", "project_id": p, "item_id": f"i{i}", "worker_id": w,
                        "label": gold, "duration_ms": 1500, "at_ms": 1000 * i + 400} for w in ("w1", "w2")]
    events += [{"kind": "prediction", "project_id": p, "item_id": f"i{i}", "label": m, "confidence": c,
                "at_ms": 1000 * i + 100} for i, (m, c) in enumerate([("a", 0.95), ("b", 0.9), ("b", 0.6), ("b", 0.55)])]
    workers = [{"project_id": p, "worker_id": w, "status": "active", "gold_correct": 3, "gold_wrong": 1,
                "tasks_done": 2, "earnings": 0.1, "fraud_signals": []} for w in ("w1", "w2")]
    return FakeDb(monitor_events=events, worker_snapshots=workers)


def test_dashboard_data_puts_the_pieces_together():
    data = dashboard_data(small_store(), "proj", ["a", "b"])  # type: ignore[arg-type]
    json.dumps(data, allow_nan=False)  # JSON-clean: no NaN anywhere
    curve = data["accuracy_vs_human_fraction"]
    assert curve["items"] == 4 and len(curve["curve"]) == 21
    assert curve["operating_point"] == {"human_fraction": 0.5, "accuracy": 1.0, "with_gold": 4}
    assert curve["curve"][0]["accuracy"] == 0.75 and curve["curve"][10]["accuracy"] == 1.0
    assert data["reliability"]["items"] == 4
    assert data["summary"]["model_accuracy"] == 0.75  # i2: the model said b, gold a
    assert [w["worker_id"] for w in data["workers"]] == ["w1", "w2"]
    assert data["workers"][0]["median_seconds"] == 1.5
    assert sum(r["final_labels"] for r in data["throughput_latency"]) == 4
    assert sum(r["items"] for r in data["agreement_over_time"]) == 2


def test_dashboard_data_of_an_empty_project_is_all_nulls_not_errors():
    data = dashboard_data(FakeDb(), "nothing", ["a", "b"])  # type: ignore[arg-type]
    json.dumps(data, allow_nan=False)
    assert data["workers"] == [] and data["agreement_over_time"] == [] and data["throughput_latency"] == []
    assert data["summary"]["accuracy"] is None and data["summary"]["latency_p95_ms"] is None


ADMIN_TOKEN = "lsa_admin"


def get(url: str, token: str = ADMIN_TOKEN) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_web_api_serves_the_page_projects_and_data():
    stop = threading.Event()
    store = FakeStore(small_store(), {"proj": ["a", "b"], "other": ["x", "y"]})
    web = DashboardWeb(store, 0, tokens=TokenDirectory(None, admin_token=ADMIN_TOKEN))
    web.start(stop)
    base = f"http://127.0.0.1:{web.port}"
    try:
        status, page = get(base + "/", token="")  # the page itself is open: it holds no data
        assert status == 200 and b'data-testid="accuracy-chart"' in page
        assert b"http://" not in page.replace(b"http://www.w3.org/2000/svg", b"")  # nothing from elsewhere
        status, body = get(base + "/api/projects")
        assert status == 200 and json.loads(body)["projects"] == ["other", "proj"]
        status, body = get(base + "/api/dashboard?project_id=proj")
        assert status == 200 and json.loads(body)["project_id"] == "proj"
        assert get(base + "/api/dashboard?project_id=missing") == (
            404, b'{"error": "no such project: \'missing\'", "code": "NOT_FOUND"}')
        assert get(base + "/api/nope")[0] == 404
        assert get(base + "/healthz", token="") == (200, b'{"status": "SERVING"}')
    finally:
        stop.set()


def test_the_web_api_answers_503_while_the_store_is_down():
    class DownStore(FakeStore):
        def project_ids(self, where: dict | None = None) -> list[str]:
            raise PyMongoError("connection refused")

    stop = threading.Event()
    web = DashboardWeb(DownStore(small_store(), {}), 0, serving=lambda: False,
                       tokens=TokenDirectory(None, admin_token=ADMIN_TOKEN))
    web.start(stop)
    base = f"http://127.0.0.1:{web.port}"
    try:
        status, body = get(base + "/api/projects")
        assert (status, json.loads(body)["code"]) == (503, "UNAVAILABLE")
        assert get(base + "/healthz", token="") == (503, b'{"status": "NOT_SERVING"}')
    finally:
        stop.set()



def test_dawid_skene_accuracy_tells_a_spammer_from_good_workers_without_gold():
    import random

    from labelstream.monitor.dashboard import dawid_skene_accuracy

    rng = random.Random(1)
    responses = []
    for i in range(150):
        truth = rng.choice(["neg", "pos"])
        for worker, accuracy in (("a", 0.95), ("b", 0.9), ("c", 0.9), ("spam", 0.5)):
            label = truth if rng.random() < accuracy else ("pos" if truth == "neg" else "neg")
            responses.append({"item_id": f"i{i}", "worker_id": worker, "label": label})
    skill = dawid_skene_accuracy(responses, ["neg", "pos"])
    assert min(skill["a"], skill["b"], skill["c"]) > 0.8 > 0.65 > skill["spam"]
    assert dawid_skene_accuracy([], ["neg", "pos"]) == {}
