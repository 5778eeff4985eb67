from labelstream.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitRequest(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: _events_pb2.Item
    def __init__(self, item: _Optional[_Union[_events_pb2.Item, _Mapping]] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("item_id", "duplicate")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    duplicate: bool
    def __init__(self, item_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ApplyProjectRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: _events_pb2.ProjectSpec
    def __init__(self, project: _Optional[_Union[_events_pb2.ProjectSpec, _Mapping]] = ...) -> None: ...

class ApplyProjectResponse(_message.Message):
    __slots__ = ("project_id", "created")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    created: bool
    def __init__(self, project_id: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class CreateProjectOwnerRequest(_message.Message):
    __slots__ = ("project_id", "owner_id", "rotate_token")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    ROTATE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    owner_id: str
    rotate_token: bool
    def __init__(self, project_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., rotate_token: _Optional[bool] = ...) -> None: ...

class CreateProjectOwnerResponse(_message.Message):
    __slots__ = ("project_id", "owner_id", "token")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    owner_id: str
    token: str
    def __init__(self, project_id: _Optional[str] = ..., owner_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("project_id", "texts")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[_events_pb2.Prediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[_events_pb2.Prediction, _Mapping]]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("project_id", "item_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    item_id: str
    def __init__(self, project_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class LeaseTaskRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class LeasedTask(_message.Message):
    __slots__ = ("task_id", "project_id", "text", "labels", "instructions", "lease_expires_at_ms", "content_warning", "break_reminder", "pay", "responses", "task", "max_labels", "none_label", "label_guidelines")
    class LabelGuidelinesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WARNING_FIELD_NUMBER: _ClassVar[int]
    BREAK_REMINDER_FIELD_NUMBER: _ClassVar[int]
    PAY_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    MAX_LABELS_FIELD_NUMBER: _ClassVar[int]
    NONE_LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_GUIDELINES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    project_id: str
    text: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    instructions: str
    lease_expires_at_ms: int
    content_warning: str
    break_reminder: str
    pay: float
    responses: _containers.RepeatedScalarFieldContainer[str]
    task: str
    max_labels: int
    none_label: str
    label_guidelines: _containers.ScalarMap[str, str]
    def __init__(self, task_id: _Optional[str] = ..., project_id: _Optional[str] = ..., text: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., instructions: _Optional[str] = ..., lease_expires_at_ms: _Optional[int] = ..., content_warning: _Optional[str] = ..., break_reminder: _Optional[str] = ..., pay: _Optional[float] = ..., responses: _Optional[_Iterable[str]] = ..., task: _Optional[str] = ..., max_labels: _Optional[int] = ..., none_label: _Optional[str] = ..., label_guidelines: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SubmitAnswerRequest(_message.Message):
    __slots__ = ("task_id", "label")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    label: str
    def __init__(self, task_id: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class SubmitAnswerResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...

class SkipTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class SkipTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMyStatsRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class WorkerStats(_message.Message):
    __slots__ = ("worker_id", "project_id", "status", "tasks_done", "gold_answered", "gold_accuracy", "earnings", "hourly_rate", "median_seconds_per_task", "fraud_signals", "gold_rate", "blocked_reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    GOLD_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    GOLD_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EARNINGS_FIELD_NUMBER: _ClassVar[int]
    HOURLY_RATE_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_SECONDS_PER_TASK_FIELD_NUMBER: _ClassVar[int]
    FRAUD_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    GOLD_RATE_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    project_id: str
    status: str
    tasks_done: int
    gold_answered: int
    gold_accuracy: float
    earnings: float
    hourly_rate: float
    median_seconds_per_task: float
    fraud_signals: _containers.RepeatedScalarFieldContainer[str]
    gold_rate: float
    blocked_reason: str
    def __init__(self, worker_id: _Optional[str] = ..., project_id: _Optional[str] = ..., status: _Optional[str] = ..., tasks_done: _Optional[int] = ..., gold_answered: _Optional[int] = ..., gold_accuracy: _Optional[float] = ..., earnings: _Optional[float] = ..., hourly_rate: _Optional[float] = ..., median_seconds_per_task: _Optional[float] = ..., fraud_signals: _Optional[_Iterable[str]] = ..., gold_rate: _Optional[float] = ..., blocked_reason: _Optional[str] = ...) -> None: ...

class CreateWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "rotate_token")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ROTATE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    rotate_token: bool
    def __init__(self, worker_id: _Optional[str] = ..., rotate_token: _Optional[bool] = ...) -> None: ...

class CreateWorkerResponse(_message.Message):
    __slots__ = ("worker_id", "token")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    token: str
    def __init__(self, worker_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class GoldItem(_message.Message):
    __slots__ = ("item_id", "text", "label", "weight", "responses")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    text: str
    label: str
    weight: float
    responses: _containers.RepeatedCompositeFieldContainer[_events_pb2.Response]
    def __init__(self, item_id: _Optional[str] = ..., text: _Optional[str] = ..., label: _Optional[str] = ..., weight: _Optional[float] = ..., responses: _Optional[_Iterable[_Union[_events_pb2.Response, _Mapping]]] = ...) -> None: ...

class AddGoldRequest(_message.Message):
    __slots__ = ("project_id", "items")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    items: _containers.RepeatedCompositeFieldContainer[GoldItem]
    def __init__(self, project_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[GoldItem, _Mapping]]] = ...) -> None: ...

class AddGoldResponse(_message.Message):
    __slots__ = ("added", "total")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    added: int
    total: int
    def __init__(self, added: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class GetWorkerRequest(_message.Message):
    __slots__ = ("project_id", "worker_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    worker_id: str
    def __init__(self, project_id: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStats]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerStats, _Mapping]]] = ...) -> None: ...

class BlockWorkerRequest(_message.Message):
    __slots__ = ("project_id", "worker_id", "reason")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    worker_id: str
    reason: str
    def __init__(self, project_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetFinalLabelRequest(_message.Message):
    __slots__ = ("project_id", "item_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    item_id: str
    def __init__(self, project_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class GetProjectStatsRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class PathStats(_message.Message):
    __slots__ = ("final_labels", "with_gold", "correct", "accuracy")
    FINAL_LABELS_FIELD_NUMBER: _ClassVar[int]
    WITH_GOLD_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    final_labels: int
    with_gold: int
    correct: int
    accuracy: float
    def __init__(self, final_labels: _Optional[int] = ..., with_gold: _Optional[int] = ..., correct: _Optional[int] = ..., accuracy: _Optional[float] = ...) -> None: ...

class ProjectStats(_message.Message):
    __slots__ = ("project_id", "items_accepted", "items_dead_lettered", "predictions", "auto_accepted", "human_tasks", "human_responses", "final_labels", "human_fraction", "overall", "auto_path", "human_path", "throughput_per_s", "latency_p50_ms", "latency_p95_ms")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    AUTO_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    HUMAN_TASKS_FIELD_NUMBER: _ClassVar[int]
    HUMAN_RESPONSES_FIELD_NUMBER: _ClassVar[int]
    FINAL_LABELS_FIELD_NUMBER: _ClassVar[int]
    HUMAN_FRACTION_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    AUTO_PATH_FIELD_NUMBER: _ClassVar[int]
    HUMAN_PATH_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_S_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    items_accepted: int
    items_dead_lettered: int
    predictions: int
    auto_accepted: int
    human_tasks: int
    human_responses: int
    final_labels: int
    human_fraction: float
    overall: PathStats
    auto_path: PathStats
    human_path: PathStats
    throughput_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    def __init__(self, project_id: _Optional[str] = ..., items_accepted: _Optional[int] = ..., items_dead_lettered: _Optional[int] = ..., predictions: _Optional[int] = ..., auto_accepted: _Optional[int] = ..., human_tasks: _Optional[int] = ..., human_responses: _Optional[int] = ..., final_labels: _Optional[int] = ..., human_fraction: _Optional[float] = ..., overall: _Optional[_Union[PathStats, _Mapping]] = ..., auto_path: _Optional[_Union[PathStats, _Mapping]] = ..., human_path: _Optional[_Union[PathStats, _Mapping]] = ..., throughput_per_s: _Optional[float] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ...) -> None: ...
