from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SchemaVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEMA_VERSION_UNSPECIFIED: _ClassVar[SchemaVersion]
    SCHEMA_VERSION_1: _ClassVar[SchemaVersion]

class Route(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_UNSPECIFIED: _ClassVar[Route]
    ROUTE_AUTO: _ClassVar[Route]
    ROUTE_HUMAN: _ClassVar[Route]

class LabelSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_SOURCE_UNSPECIFIED: _ClassVar[LabelSource]
    LABEL_SOURCE_AUTO: _ClassVar[LabelSource]
    LABEL_SOURCE_HUMAN: _ClassVar[LabelSource]
SCHEMA_VERSION_UNSPECIFIED: SchemaVersion
SCHEMA_VERSION_1: SchemaVersion
ROUTE_UNSPECIFIED: Route
ROUTE_AUTO: Route
ROUTE_HUMAN: Route
LABEL_SOURCE_UNSPECIFIED: LabelSource
LABEL_SOURCE_AUTO: LabelSource
LABEL_SOURCE_HUMAN: LabelSource

class FewShotExample(_message.Message):
    __slots__ = ("text", "label", "labels")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    text: str
    label: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., label: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ProjectSpec(_message.Message):
    __slots__ = ("schema_version", "project_id", "name", "task", "labels", "instructions", "examples", "auto_accept_threshold", "overlap", "max_overlap", "model", "max_text_bytes", "routing_strategy", "target_accuracy", "confidence_level", "accuracy_bound", "min_verified", "refit_every", "explore_fraction", "human_fraction_cap", "budget_per_hour", "pay_per_answer", "overflow", "overlap_margin", "overlap_near_threshold", "model_version", "head_refit_every", "models", "workers", "content_warning", "aggregation", "posterior_bound", "head_refit_growth", "responses_per_item", "allow_ties", "max_labels_per_item", "none_label", "label_guidelines")
    class LabelGuidelinesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    AUTO_ACCEPT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MAX_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROUTING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TARGET_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_BOUND_FIELD_NUMBER: _ClassVar[int]
    MIN_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    REFIT_EVERY_FIELD_NUMBER: _ClassVar[int]
    EXPLORE_FRACTION_FIELD_NUMBER: _ClassVar[int]
    HUMAN_FRACTION_CAP_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    PAY_PER_ANSWER_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_MARGIN_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_NEAR_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEAD_REFIT_EVERY_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_WARNING_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FIELD_NUMBER: _ClassVar[int]
    POSTERIOR_BOUND_FIELD_NUMBER: _ClassVar[int]
    HEAD_REFIT_GROWTH_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_PER_ITEM_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TIES_FIELD_NUMBER: _ClassVar[int]
    MAX_LABELS_PER_ITEM_FIELD_NUMBER: _ClassVar[int]
    NONE_LABEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_GUIDELINES_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    name: str
    task: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    instructions: str
    examples: _containers.RepeatedCompositeFieldContainer[FewShotExample]
    auto_accept_threshold: float
    overlap: int
    max_overlap: int
    model: str
    max_text_bytes: int
    routing_strategy: str
    target_accuracy: float
    confidence_level: float
    accuracy_bound: str
    min_verified: int
    refit_every: int
    explore_fraction: float
    human_fraction_cap: float
    budget_per_hour: float
    pay_per_answer: float
    overflow: str
    overlap_margin: float
    overlap_near_threshold: int
    model_version: str
    head_refit_every: int
    models: _containers.RepeatedScalarFieldContainer[str]
    workers: WorkerPolicy
    content_warning: str
    aggregation: str
    posterior_bound: float
    head_refit_growth: float
    responses_per_item: int
    allow_ties: bool
    max_labels_per_item: int
    none_label: str
    label_guidelines: _containers.ScalarMap[str, str]
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., task: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., instructions: _Optional[str] = ..., examples: _Optional[_Iterable[_Union[FewShotExample, _Mapping]]] = ..., auto_accept_threshold: _Optional[float] = ..., overlap: _Optional[int] = ..., max_overlap: _Optional[int] = ..., model: _Optional[str] = ..., max_text_bytes: _Optional[int] = ..., routing_strategy: _Optional[str] = ..., target_accuracy: _Optional[float] = ..., confidence_level: _Optional[float] = ..., accuracy_bound: _Optional[str] = ..., min_verified: _Optional[int] = ..., refit_every: _Optional[int] = ..., explore_fraction: _Optional[float] = ..., human_fraction_cap: _Optional[float] = ..., budget_per_hour: _Optional[float] = ..., pay_per_answer: _Optional[float] = ..., overflow: _Optional[str] = ..., overlap_margin: _Optional[float] = ..., overlap_near_threshold: _Optional[int] = ..., model_version: _Optional[str] = ..., head_refit_every: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ..., workers: _Optional[_Union[WorkerPolicy, _Mapping]] = ..., content_warning: _Optional[str] = ..., aggregation: _Optional[str] = ..., posterior_bound: _Optional[float] = ..., head_refit_growth: _Optional[float] = ..., responses_per_item: _Optional[int] = ..., allow_ties: _Optional[bool] = ..., max_labels_per_item: _Optional[int] = ..., none_label: _Optional[str] = ..., label_guidelines: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WorkerPolicy(_message.Message):
    __slots__ = ("qualification_tasks", "qualification_accuracy", "block_accuracy", "block_confidence", "min_gold_to_block", "gold_rate_new", "gold_rate_trusted", "gold_rate_suspect", "trusted_after", "min_seconds_per_task", "max_constant_streak", "max_position_share", "max_shortcut_share", "min_hourly_wage", "pay_policy", "max_continuous_minutes", "break_minutes")
    QUALIFICATION_TASKS_FIELD_NUMBER: _ClassVar[int]
    QUALIFICATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MIN_GOLD_TO_BLOCK_FIELD_NUMBER: _ClassVar[int]
    GOLD_RATE_NEW_FIELD_NUMBER: _ClassVar[int]
    GOLD_RATE_TRUSTED_FIELD_NUMBER: _ClassVar[int]
    GOLD_RATE_SUSPECT_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_AFTER_FIELD_NUMBER: _ClassVar[int]
    MIN_SECONDS_PER_TASK_FIELD_NUMBER: _ClassVar[int]
    MAX_CONSTANT_STREAK_FIELD_NUMBER: _ClassVar[int]
    MAX_POSITION_SHARE_FIELD_NUMBER: _ClassVar[int]
    MAX_SHORTCUT_SHARE_FIELD_NUMBER: _ClassVar[int]
    MIN_HOURLY_WAGE_FIELD_NUMBER: _ClassVar[int]
    PAY_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTINUOUS_MINUTES_FIELD_NUMBER: _ClassVar[int]
    BREAK_MINUTES_FIELD_NUMBER: _ClassVar[int]
    qualification_tasks: int
    qualification_accuracy: float
    block_accuracy: float
    block_confidence: float
    min_gold_to_block: int
    gold_rate_new: float
    gold_rate_trusted: float
    gold_rate_suspect: float
    trusted_after: int
    min_seconds_per_task: float
    max_constant_streak: int
    max_position_share: float
    max_shortcut_share: float
    min_hourly_wage: float
    pay_policy: str
    max_continuous_minutes: float
    break_minutes: float
    def __init__(self, qualification_tasks: _Optional[int] = ..., qualification_accuracy: _Optional[float] = ..., block_accuracy: _Optional[float] = ..., block_confidence: _Optional[float] = ..., min_gold_to_block: _Optional[int] = ..., gold_rate_new: _Optional[float] = ..., gold_rate_trusted: _Optional[float] = ..., gold_rate_suspect: _Optional[float] = ..., trusted_after: _Optional[int] = ..., min_seconds_per_task: _Optional[float] = ..., max_constant_streak: _Optional[int] = ..., max_position_share: _Optional[float] = ..., max_shortcut_share: _Optional[float] = ..., min_hourly_wage: _Optional[float] = ..., pay_policy: _Optional[str] = ..., max_continuous_minutes: _Optional[float] = ..., break_minutes: _Optional[float] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("text", "source")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    source: str
    def __init__(self, text: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "text", "metadata", "gold_label", "ingested_at_ms", "responses", "annotators")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    GOLD_LABEL_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATORS_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    text: str
    metadata: _containers.ScalarMap[str, str]
    gold_label: str
    ingested_at_ms: int
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    annotators: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., gold_label: _Optional[str] = ..., ingested_at_ms: _Optional[int] = ..., responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ..., annotators: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelVote(_message.Message):
    __slots__ = ("model_name", "model_version", "probabilities")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "labels", "probabilities", "model_name", "model_version", "ingested_at_ms", "predicted_at_ms", "text", "votes", "head_version", "responses", "annotators")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    HEAD_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATORS_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    model_name: str
    model_version: str
    ingested_at_ms: int
    predicted_at_ms: int
    text: str
    votes: _containers.RepeatedCompositeFieldContainer[ModelVote]
    head_version: str
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    annotators: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., probabilities: _Optional[_Iterable[float]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., ingested_at_ms: _Optional[int] = ..., predicted_at_ms: _Optional[int] = ..., text: _Optional[str] = ..., votes: _Optional[_Iterable[_Union[ModelVote, _Mapping]]] = ..., head_version: _Optional[str] = ..., responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ..., annotators: _Optional[_Iterable[str]] = ...) -> None: ...

class RouteDecision(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "route", "label", "confidence", "threshold", "reason", "model_name", "model_version", "ingested_at_ms", "strategy", "score", "target_accuracy", "accuracy_lower_bound", "calibration_method", "routing_model_version", "verified_items", "explored", "budget", "model_votes", "deferred", "head_version", "ranking", "calibration_sample")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TARGET_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_METHOD_FIELD_NUMBER: _ClassVar[int]
    ROUTING_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPLORED_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_VOTES_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    HEAD_VERSION_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    route: Route
    label: str
    confidence: float
    threshold: float
    reason: str
    model_name: str
    model_version: str
    ingested_at_ms: int
    strategy: str
    score: float
    target_accuracy: float
    accuracy_lower_bound: float
    calibration_method: str
    routing_model_version: int
    verified_items: int
    explored: bool
    budget: str
    model_votes: bool
    deferred: bool
    head_version: str
    ranking: _containers.RepeatedScalarFieldContainer[str]
    calibration_sample: bool
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., route: _Optional[_Union[Route, str]] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., threshold: _Optional[float] = ..., reason: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., ingested_at_ms: _Optional[int] = ..., strategy: _Optional[str] = ..., score: _Optional[float] = ..., target_accuracy: _Optional[float] = ..., accuracy_lower_bound: _Optional[float] = ..., calibration_method: _Optional[str] = ..., routing_model_version: _Optional[int] = ..., verified_items: _Optional[int] = ..., explored: _Optional[bool] = ..., budget: _Optional[str] = ..., model_votes: _Optional[bool] = ..., deferred: _Optional[bool] = ..., head_version: _Optional[str] = ..., ranking: _Optional[_Iterable[str]] = ..., calibration_sample: _Optional[bool] = ...) -> None: ...

class HumanTask(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "task_id", "text", "labels", "overlap", "priority", "model_label", "model_confidence", "ingested_at_ms", "model_votes", "model_name", "model_version", "responses", "annotators")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VOTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    ANNOTATORS_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    task_id: str
    text: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    overlap: int
    priority: float
    model_label: str
    model_confidence: float
    ingested_at_ms: int
    model_votes: bool
    model_name: str
    model_version: str
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    annotators: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., task_id: _Optional[str] = ..., text: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., overlap: _Optional[int] = ..., priority: _Optional[float] = ..., model_label: _Optional[str] = ..., model_confidence: _Optional[float] = ..., ingested_at_ms: _Optional[int] = ..., model_votes: _Optional[bool] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ..., annotators: _Optional[_Iterable[str]] = ...) -> None: ...

class HumanResponse(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "task_id", "worker_id", "label", "answered_at_ms", "duration_ms", "ingested_at_ms", "task_overlap", "model_label", "model_confidence", "model_name", "model_version", "pay", "display_order", "displayed_position", "max_answers")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TASK_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    MODEL_LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_ORDER_FIELD_NUMBER: _ClassVar[int]
    DISPLAYED_POSITION_FIELD_NUMBER: _ClassVar[int]
    MAX_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    task_id: str
    worker_id: str
    label: str
    answered_at_ms: int
    duration_ms: int
    ingested_at_ms: int
    task_overlap: int
    model_label: str
    model_confidence: float
    model_name: str
    model_version: str
    pay: float
    display_order: _containers.RepeatedScalarFieldContainer[int]
    displayed_position: int
    max_answers: int
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., label: _Optional[str] = ..., answered_at_ms: _Optional[int] = ..., duration_ms: _Optional[int] = ..., ingested_at_ms: _Optional[int] = ..., task_overlap: _Optional[int] = ..., model_label: _Optional[str] = ..., model_confidence: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., pay: _Optional[float] = ..., display_order: _Optional[_Iterable[int]] = ..., displayed_position: _Optional[int] = ..., max_answers: _Optional[int] = ...) -> None: ...

class FinalLabel(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "label", "source", "confidence", "method", "version", "workers", "model_name", "model_version", "ingested_at_ms", "finalized_at_ms", "with_model", "revision_reason", "ranking", "label_set")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WITH_MODEL_FIELD_NUMBER: _ClassVar[int]
    REVISION_REASON_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    LABEL_SET_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    label: str
    source: LabelSource
    confidence: float
    method: str
    version: int
    workers: _containers.RepeatedScalarFieldContainer[str]
    model_name: str
    model_version: str
    ingested_at_ms: int
    finalized_at_ms: int
    with_model: bool
    revision_reason: str
    ranking: _containers.RepeatedScalarFieldContainer[str]
    label_set: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., label: _Optional[str] = ..., source: _Optional[_Union[LabelSource, str]] = ..., confidence: _Optional[float] = ..., method: _Optional[str] = ..., version: _Optional[int] = ..., workers: _Optional[_Iterable[str]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., ingested_at_ms: _Optional[int] = ..., finalized_at_ms: _Optional[int] = ..., with_model: _Optional[bool] = ..., revision_reason: _Optional[str] = ..., ranking: _Optional[_Iterable[str]] = ..., label_set: _Optional[_Iterable[str]] = ...) -> None: ...

class QualityEvent(_message.Message):
    __slots__ = ("schema_version", "project_id", "item_id", "kind", "worker_id", "correct", "value", "at_ms", "label", "threshold", "detail", "text", "worker", "responses")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    project_id: str
    item_id: str
    kind: str
    worker_id: str
    correct: bool
    value: float
    at_ms: int
    label: str
    threshold: float
    detail: str
    text: str
    worker: WorkerSnapshot
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., kind: _Optional[str] = ..., worker_id: _Optional[str] = ..., correct: _Optional[bool] = ..., value: _Optional[float] = ..., at_ms: _Optional[int] = ..., label: _Optional[str] = ..., threshold: _Optional[float] = ..., detail: _Optional[str] = ..., text: _Optional[str] = ..., worker: _Optional[_Union[WorkerSnapshot, _Mapping]] = ..., responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ...) -> None: ...

class WorkerSnapshot(_message.Message):
    __slots__ = ("status", "tasks_done", "gold_correct", "gold_wrong", "earnings", "work_ms", "blocked_reason", "fraud_signals")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    GOLD_CORRECT_FIELD_NUMBER: _ClassVar[int]
    GOLD_WRONG_FIELD_NUMBER: _ClassVar[int]
    EARNINGS_FIELD_NUMBER: _ClassVar[int]
    WORK_MS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_REASON_FIELD_NUMBER: _ClassVar[int]
    FRAUD_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    status: str
    tasks_done: int
    gold_correct: int
    gold_wrong: int
    earnings: float
    work_ms: int
    blocked_reason: str
    fraud_signals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[str] = ..., tasks_done: _Optional[int] = ..., gold_correct: _Optional[int] = ..., gold_wrong: _Optional[int] = ..., earnings: _Optional[float] = ..., work_ms: _Optional[int] = ..., blocked_reason: _Optional[str] = ..., fraud_signals: _Optional[_Iterable[str]] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("schema_version", "reason", "detail", "source_topic", "source_partition", "source_offset", "payload", "service", "project_id", "item_id", "at_ms", "error_type", "attempts", "payload_size", "payload_truncated")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    schema_version: SchemaVersion
    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    payload: bytes
    service: str
    project_id: str
    item_id: str
    at_ms: int
    error_type: str
    attempts: int
    payload_size: int
    payload_truncated: bool
    def __init__(self, schema_version: _Optional[_Union[SchemaVersion, str]] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., source_topic: _Optional[str] = ..., source_partition: _Optional[int] = ..., source_offset: _Optional[int] = ..., payload: _Optional[bytes] = ..., service: _Optional[str] = ..., project_id: _Optional[str] = ..., item_id: _Optional[str] = ..., at_ms: _Optional[int] = ..., error_type: _Optional[str] = ..., attempts: _Optional[int] = ..., payload_size: _Optional[int] = ..., payload_truncated: _Optional[bool] = ...) -> None: ...
