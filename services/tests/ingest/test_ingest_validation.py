import json
import time
from concurrent import futures
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from labelstream.common import projects
from labelstream.common.dead_letters import DeadLetterReason, InvalidMessage
from labelstream.common.inputs import (
    MAX_LABEL_CHARS,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    PROJECT_ID_PATTERN,
    check_metadata,
    check_text,
    loads_json,
    unsafe_character,
)
from labelstream.ingest import __main__ as ingest_service
from labelstream.ingest.validation import (
    DEFAULT_MAX_RECORD_BYTES,
    item_id_problem,
    parse_raw_item,
    validate_item,
)
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc


def problems_of(spec: events_pb2.ProjectSpec) -> list[str]:
    """What ApplyProject reports: the project contract's problems with the resolved spec."""
    return projects.validate(projects.resolve(spec))


def project(**overrides) -> events_pb2.ProjectSpec:
    fields = {"project_id": "p", "task": "single_label", "labels": ["neg", "pos"], "auto_accept_threshold": 0.9,
              "overlap": 3, "max_overlap": 5, "model": "encoder_fewshot"}
    return events_pb2.ProjectSpec(**{**fields, **overrides})


def reason(call) -> str:
    with pytest.raises(InvalidMessage) as error:
        call()
    return error.value.reason


def test_json_and_protobuf_items_parse_the_same():
    as_json = parse_raw_item(json.dumps({"project_id": "p", "item_id": "1", "text": "hi"}).encode())
    proto = events_pb2.Item(schema_version=1, project_id="p", item_id="1", text="hi")
    as_proto = parse_raw_item(proto.SerializeToString(), "application/x-protobuf")
    assert as_json == as_proto


@pytest.mark.parametrize(("value", "expected"), [
    (b'{"project_id": ', "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b'{"project_id": "p", "item_id": "1", "text": "x", "colour": "red"}', "unknown_field"),
    (b'{"project_id": "p", "item_id": 1, "text": "x"}', "bad_field_type"),
    (b'{"project_id": "p", "item_id": "1", "text": "x", "schema_version": 9}', "unknown_schema_version"),
])
def test_bad_json_reasons(value, expected):
    assert reason(lambda: parse_raw_item(value)) == expected


def test_garbage_protobuf_is_rejected():
    assert reason(lambda: parse_raw_item(b"\xff\xff\xff\xff\x0f\x01", "application/x-protobuf")) == "bad_protobuf"


@pytest.mark.parametrize(("item", "spec", "expected"), [
    (events_pb2.Item(item_id="1", text="x"), project(), "missing_project_id"),
    (events_pb2.Item(project_id="p", item_id="has space", text="x"), project(), "bad_item_id"),
    (events_pb2.Item(project_id="p", item_id="1", text="x"), None, "unknown_project"),
    (events_pb2.Item(project_id="p", item_id="1", text=" \n "), project(), "empty_text"),
    (events_pb2.Item(project_id="p", item_id="1", text="x" * 101), project(max_text_bytes=100), "too_large"),
    (events_pb2.Item(project_id="p", item_id="1", text="x", gold_label="meh"), project(), "unknown_label"),
])
def test_item_validation_reasons(item, spec, expected):
    assert reason(lambda: validate_item(item, spec, max_bytes=1000)) == expected


def test_valid_item_passes():
    validate_item(events_pb2.Item(project_id="p", item_id="a-1", text="fine", gold_label="pos"), project(), 1000)


def test_project_validation_lists_every_problem():
    problems = problems_of(project(project_id="bad id", labels=["x"], auto_accept_threshold=1.5, overlap=-1,
                                   max_overlap=2, routing_strategy="psychic"))
    assert len(problems) == 5, problems  # id, labels, threshold, overlap, strategy
    assert problems_of(project()) == []


def test_unset_fields_are_the_contracts_defaults_not_problems():
    """proto3 cannot tell an unset overlap or model from 0 and "": the contract gives them their
    defaults (so a project applied over gRPC with its required fields only is valid)."""
    resolved = projects.resolve(project(overlap=0, max_overlap=0, model=""))
    assert (resolved.overlap, resolved.max_overlap, resolved.model) == (3, 5, "encoder_fewshot")
    assert projects.validate(resolved) == []


# --- validation at the door: every new reason -------------------------------------------------------------------

def detail(call) -> str:
    with pytest.raises(InvalidMessage) as error:
        call()
    return f"{error.value.reason}: {error.value.detail}"


def has_surrogate(value: object) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in json.dumps(value, ensure_ascii=False))


def item_json(ensure_ascii: bool = True, **fields) -> bytes:
    doc = {"project_id": "p", "item_id": "1", "text": "hi", **fields}
    return json.dumps(doc, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("levels", [5_000, 100_000])
@pytest.mark.parametrize("opener", [b"[", b'{"a":', b'{"a":['])
def test_deep_nesting_is_bad_json_not_a_recursion_error(levels, opener):
    value = opener * levels
    assert "nested deeper than 8 levels" in detail(lambda: loads_json(value))
    # the items.raw path, with a record limit that lets it be parsed
    assert reason(lambda: parse_raw_item(value, "", len(value))) == DeadLetterReason.BAD_JSON
    assert reason(lambda: parse_raw_item(value, "application/json", len(value))) == DeadLetterReason.BAD_JSON
    if len(value) <= DEFAULT_MAX_RECORD_BYTES:
        assert reason(lambda: parse_raw_item(value)) == DeadLetterReason.BAD_JSON


def test_deep_nesting_inside_an_item_and_closed_nesting():
    deep = b'{"project_id": "p", "item_id": "1", "text": "hi", "metadata": ' + b'{"a":' * 5000
    assert reason(lambda: parse_raw_item(deep)) == DeadLetterReason.BAD_JSON
    assert loads_json(b"[" * 8 + b"]" * 8) == [[[[[[[[]]]]]]]]
    assert reason(lambda: loads_json(b"[" * 9 + b"]" * 9)) == DeadLetterReason.BAD_JSON
    # brackets inside strings (escaped quotes too) are not nesting; an unterminated string stops the scan
    assert loads_json(b'{"a": "[[[[[[[[[[[[\\"{{{{{{{{{{"}') == {"a": '[[[[[[[[[[[["{{{{{{{{{{'}
    assert reason(lambda: loads_json(b'["' + b"[" * 5000)) == DeadLetterReason.BAD_JSON
    assert reason(lambda: parse_raw_item(b"[" * 5000, "application/x-protobuf")) == DeadLetterReason.BAD_PROTOBUF


@pytest.mark.parametrize(("value", "words"), [
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"a": "\xff"}', "not UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as if it were a character (CESU-8)
    (b'{"a": ' + b"1" * 5000 + b"}", "a number is too long"),
    (b'{"a": ', "not valid JSON"),
])
def test_json_that_is_not_strict_json(value, words):
    assert words in detail(lambda: loads_json(value))
    assert reason(lambda: parse_raw_item(value)) == DeadLetterReason.BAD_JSON


UNSAFE_ITEM_IDS = ["a\x00b", "a\u202eb", "a\u2066b", "a\u0085b", "a\x7fb", "a\x1bb", "a\u200bb", "a\ufeffb",
                   "a\u2028b", "\ud800", "a\udfffb", "item-1\n", "x" * 201]


@pytest.mark.parametrize("item_id", UNSAFE_ITEM_IDS)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_unsafe_item_ids_are_bad_item_id(item_id, ensure_ascii):
    error = pytest.raises(InvalidMessage, parse_raw_item, item_json(ensure_ascii, item_id=item_id)).value
    if has_surrogate(item_id) and not ensure_ascii:  # written as UTF-8 bytes, a surrogate is not UTF-8 at all
        assert error.reason == DeadLetterReason.BAD_JSON and "not UTF-8" in error.detail
        return
    assert error.reason == DeadLetterReason.BAD_ITEM_ID
    assert error.item_id == "" and error.project_id == "p"  # the dead letter is keyed by valid ids only
    if not has_surrogate(item_id):  # a protobuf Item can hold it: gRPC, protobuf
        item = events_pb2.Item(project_id="p", item_id=item_id, text="x")
        assert reason(lambda: validate_item(item, project(), 1000)) == DeadLetterReason.BAD_ITEM_ID
        as_proto = item.SerializeToString()
        with pytest.raises(InvalidMessage) as error:
            validate_item(parse_raw_item(b"\x08\x01" + as_proto), project(), 1000)
        assert error.value.reason == DeadLetterReason.BAD_ITEM_ID


def test_unsafe_item_id_details_name_the_character():
    rlo = item_json(item_id="a\u202eb")
    assert "U+202E RIGHT-TO-LEFT OVERRIDE at position 1" in detail(lambda: parse_raw_item(rlo))
    assert "U+0000 NULL at position 6" in detail(lambda: parse_raw_item(item_json(item_id="item-1\x00evil")))
    assert "U+D800 unpaired surrogate" in detail(lambda: parse_raw_item(item_json(item_id="\ud800")))
    assert "the limit is 200" in detail(lambda: parse_raw_item(item_json(item_id="x" * 201)))


def test_an_id_that_differs_only_after_a_nul_is_rejected():
    assert parse_raw_item(item_json(item_id="item-1")).item_id == "item-1"
    for lookalike in ("item-1\x00", "item-1\x00evil", "item-1\u200b"):
        assert reason(lambda v=lookalike: parse_raw_item(item_json(item_id=v))) == DeadLetterReason.BAD_ITEM_ID


@pytest.mark.parametrize(("fields", "expected"), [
    ({"text": "a\ud800b"}, DeadLetterReason.BAD_TEXT),
    ({"text": "\udc00"}, DeadLetterReason.BAD_TEXT),
    ({"text": "a\x00b"}, DeadLetterReason.BAD_TEXT),
    ({"project_id": "p\ud800"}, DeadLetterReason.BAD_PROJECT_ID),
    ({"project_id": "p\n"}, DeadLetterReason.BAD_PROJECT_ID),
    ({"project_id": "p q"}, DeadLetterReason.BAD_PROJECT_ID),
    ({"project_id": "p" * 65}, DeadLetterReason.BAD_PROJECT_ID),
    ({"project_id": ""}, DeadLetterReason.MISSING_PROJECT_ID),
    ({"gold_label": "pos\ud800"}, DeadLetterReason.BAD_LABEL),
    ({"gold_label": "pos\u202e"}, DeadLetterReason.BAD_LABEL),
    ({"gold_label": "pos\x00"}, DeadLetterReason.BAD_LABEL),
    ({"gold_label": "p" * 101}, DeadLetterReason.BAD_LABEL),
    ({"metadata": {"k": "v\ud800"}}, DeadLetterReason.BAD_METADATA),
    ({"metadata": {"k\ud800": "v"}}, DeadLetterReason.BAD_METADATA),
    ({"schema_version": True}, DeadLetterReason.BAD_FIELD_TYPE),
    ({"schema_version": 1.0}, DeadLetterReason.BAD_FIELD_TYPE),
])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_bad_values_are_rejected_before_a_protobuf_message_is_built(fields, expected, ensure_ascii):
    value = item_json(ensure_ascii, **fields)
    if has_surrogate(fields) and not ensure_ascii:
        expected = DeadLetterReason.BAD_JSON  # a surrogate written as UTF-8 bytes is not UTF-8 at all
    assert reason(lambda: parse_raw_item(value)) == expected


def test_text_may_hold_newlines_tabs_and_any_script():
    item = parse_raw_item(item_json(text="line 1\n\tline 2 \u05e9\u05dc\u05d5\u05dd \U0001f469\u200d\U0001f4bb",
                                    gold_label="pos"))
    validate_item(item, project(), 1000)
    assert check_text("a\nb\tc\r\u202e") is None  # bidi controls are content in text; only ids and labels refuse them
    assert reason(lambda: check_text("a\x00")) == DeadLetterReason.BAD_TEXT


def test_oversize_record_is_rejected_before_parsing():
    deep = b"[" * 10_000_000  # parsed, this would be bad_json (after a long scan)
    started = time.perf_counter()
    assert "record is 10000000 bytes; the limit is 65536 (LABELSTREAM_MAX_RECORD_BYTES)" in detail(
        lambda: parse_raw_item(deep, "application/json", 65536))
    assert reason(lambda: parse_raw_item(deep)) == DeadLetterReason.TOO_LARGE
    assert reason(lambda: parse_raw_item(deep, "application/x-protobuf", 65536)) == DeadLetterReason.TOO_LARGE
    assert time.perf_counter() - started < 0.1
    at_limit = item_json()
    assert parse_raw_item(at_limit, "", len(at_limit)).item_id == "1"
    assert reason(lambda: parse_raw_item(at_limit, "", len(at_limit) - 1)) == DeadLetterReason.TOO_LARGE


@pytest.mark.parametrize(("metadata", "words"), [
    ({f"k{i}": "v" for i in range(MAX_METADATA_KEYS + 1)}, "metadata has 33 keys; the limit is 32"),
    ({"k" * (MAX_METADATA_KEY_CHARS + 1): "v"}, "is 65 characters; the limit is 64"),
    ({"k": "v" * (MAX_METADATA_VALUE_CHARS + 1)}, "is 1025 characters; the limit is 1024"),
    ({"": "v"}, "metadata has an empty key"),
    ({"source\u200b": "v"}, "U+200B ZERO WIDTH SPACE"),
    ({"source\u202e": "v"}, "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ({"a\nb": "v"}, "U+000A LINE FEED"),
    ({"k": "a\x00b"}, "has a NUL character"),
])
def test_metadata_limits(metadata, words):
    assert words in detail(lambda: parse_raw_item(item_json(metadata=metadata)))
    item = events_pb2.Item(project_id="p", item_id="1", text="x", metadata=metadata)
    error = pytest.raises(InvalidMessage, validate_item, item, project(), 1000).value
    assert error.reason == DeadLetterReason.BAD_METADATA and words in error.detail
    assert (error.project_id, error.item_id) == ("p", "1")


def test_metadata_at_the_limits_is_accepted():
    metadata = {f"{i:02d}" + "k" * (MAX_METADATA_KEY_CHARS - 2): "v\n" * (MAX_METADATA_VALUE_CHARS // 2)
                for i in range(MAX_METADATA_KEYS)}
    validate_item(parse_raw_item(item_json(metadata=metadata)), project(), 1000)
    check_metadata({"source": "web form \u202e (as typed)", "lang": "\u05e2\u05d1"})


@pytest.mark.parametrize(("labels", "words"), [
    (["pos\u202e", "neg"], "labels[0] 'pos\\u202e' contains U+202E RIGHT-TO-LEFT OVERRIDE at position 3"),
    (["pos", "\u2066neg\u2069"], "labels[1] '\\u2066neg\\u2069' contains U+2066 LEFT-TO-RIGHT ISOLATE at position 0"),
    (["pos", "ne\x00g"], "labels[1] 'ne\\x00g' contains U+0000 NULL at position 2"),
    (["pos", "neg\u0085"], "contains U+0085 NEXT LINE"),
    (["pos", ""], "labels[1] is empty"),
    (["pos", "n" * (MAX_LABEL_CHARS + 1)], "labels[1] is 101 characters; the limit is 100"),
])
def test_project_labels_with_unsafe_characters(labels, words):
    problems = problems_of(project(labels=labels))
    assert any(words in problem for problem in problems), problems


def test_project_text_fields_and_label_names_that_are_fine():
    assert problems_of(project(labels=["very positive", "n\u00e9gatif", "\U0001f469\u200d\U0001f4bb"],
                                    instructions="Read it.\n\tThen choose.")) == []
    spec = project(instructions="a\x00b")
    spec.examples.add(text="nul \x00 inside", label="pos")
    spec.examples.add(text="fine", label="pos\u202e")
    problems = problems_of(spec)
    assert any(p.startswith("instructions has a NUL character") for p in problems), problems
    assert any(p.startswith("examples[0].text has a NUL character") for p in problems), problems
    assert any(p.startswith("examples[1].label 'pos\\u202e' is not one of the labels") for p in problems), problems


OTHER_MESSAGES = [
    events_pb2.HumanTask(schema_version=1, project_id="p", item_id="1", task_id="t", text="hello", labels=["pos"],
                         overlap=3, priority=0.5),
    events_pb2.Prediction(schema_version=1, project_id="p", item_id="1", labels=["neg", "pos"],
                          probabilities=[0.3, 0.7], model_name="m", text="hello", ingested_at_ms=5),
    events_pb2.DeadLetter(schema_version=1, reason="bad_json", detail="d", source_topic="items.raw",
                          source_partition=1, source_offset=5, payload=b"x"),
    events_pb2.FinalLabel(schema_version=1, project_id="p", item_id="1", label="pos", source=1, confidence=0.9),
    events_pb2.HumanResponse(schema_version=1, project_id="p", item_id="1", task_id="t", worker_id="w",
                             label="pos", answered_at_ms=3),
    project(),
]


@pytest.mark.parametrize("message", OTHER_MESSAGES, ids=lambda m: m.DESCRIPTOR.name)
@pytest.mark.parametrize("content_type", ["application/x-protobuf", ""])
def test_another_message_type_on_items_raw_is_rejected(message, content_type):
    error = pytest.raises(InvalidMessage, parse_raw_item, message.SerializeToString(), content_type).value
    assert error.reason == DeadLetterReason.BAD_PROTOBUF
    assert "not a labelstream.v1.Item" in error.detail


def test_protobuf_item_with_unknown_fields_names_them():
    item = events_pb2.Item(schema_version=1, project_id="p", item_id="1", text="hi").SerializeToString()
    assert "fields [15]" in detail(lambda: parse_raw_item(item + b"\x78\x01"))  # field 15, varint 1
    assert "fields [5]" in detail(lambda: parse_raw_item(item + b"\x28\x01"))  # metadata (5) as a varint


def test_grpc_calls_answer_invalid_argument_never_internal():
    runtime = SimpleNamespace(store=SimpleNamespace(get_project=lambda project_id: project()),
                              settings=SimpleNamespace(max_item_bytes=1000), producer=None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    ingest_service.register(runtime, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            raw_submit = channel.unary_unary("/labelstream.v1.IngestService/Submit")
            stub = services_pb2_grpc.IngestServiceStub(channel)

            def status(call) -> tuple[grpc.StatusCode, str]:
                with pytest.raises(grpc.RpcError) as error:
                    call()
                return error.value.code(), error.value.details()

            not_utf8 = b"\x0a\x05\x22\x03\xed\xa0\x80"  # SubmitRequest{item{text: a surrogate in CESU-8}}
            code, message = status(lambda: raw_submit(not_utf8, timeout=10))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("bad_protobuf: not a ")
            for item, expected in [
                    (events_pb2.Item(project_id="p", item_id="a\x00b", text="x"), "bad_item_id: "),
                    (events_pb2.Item(project_id="p", item_id="a\u202eb", text="x"), "bad_item_id: "),
                    (events_pb2.Item(project_id="p\x00", item_id="1", text="x"), "bad_project_id: "),
                    (events_pb2.Item(project_id="p", item_id="1", text="x\x00"), "bad_text: "),
                    (events_pb2.Item(project_id="p", item_id="1", text="x", gold_label="pos\u202e"), "bad_label: "),
                    (events_pb2.Item(project_id="p", item_id="1", text="x", metadata={"k\u200b": "v"}),
                     "bad_metadata: ")]:
                code, message = status(lambda i=item: stub.Submit(services_pb2.SubmitRequest(item=i), timeout=10))
                assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(expected), message
            code, message = status(lambda: stub.ApplyProject(services_pb2.ApplyProjectRequest(
                project=project(labels=["pos\u202e", "neg"])), timeout=10))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "U+202E RIGHT-TO-LEFT OVERRIDE" in message
    finally:
        server.stop(0)


# --- property: whatever arrives, a valid Item or an InvalidMessage with a known reason --------------------------

FUZZ = settings(max_examples=400, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SPEC = project(labels=["negative", "positive"])
RECORD_LIMIT = 4096
TEXT_LIMIT = 300
KNOWN_REASONS = set(DeadLetterReason)


def accepted_or_rejected(value: bytes, content_type: str = "") -> events_pb2.Item | None:
    """The property: ingest's parse and validation accept a valid Item or raise InvalidMessage with a known
    reason, and an InvalidMessage can always become a dead letter. Any other exception fails the test."""
    try:
        item = parse_raw_item(value, content_type, RECORD_LIMIT)
        validate_item(item, SPEC if item.project_id == SPEC.project_id else None, TEXT_LIMIT)
    except InvalidMessage as error:
        assert error.reason in KNOWN_REASONS and type(error.reason) is DeadLetterReason
        events_pb2.DeadLetter(schema_version=1, reason=error.reason, detail=error.detail,  # builds: all UTF-8
                              project_id=error.project_id, item_id=error.item_id, payload=value)
        assert not error.project_id or PROJECT_ID_PATTERN.fullmatch(error.project_id)
        assert not error.item_id or item_id_problem(error.item_id) is None
        return None
    assert len(value) <= RECORD_LIMIT
    assert item.schema_version == events_pb2.SCHEMA_VERSION_1
    assert PROJECT_ID_PATTERN.fullmatch(item.project_id)
    assert item_id_problem(item.item_id) is None and unsafe_character(item.item_id, identifier=True) is None
    assert item.text.strip() and "\x00" not in item.text
    assert len(item.text.encode("utf-8")) <= TEXT_LIMIT
    assert not item.gold_label or item.gold_label in SPEC.labels
    check_metadata(item.metadata)
    for key, meta in item.metadata.items():
        key.encode("utf-8"), meta.encode("utf-8")
    assert events_pb2.Item.FromString(item.SerializeToString()) == item
    return item


NASTY = st.sampled_from(["", " ", "\n", "p", "1", "a-1", "positive", "negative", "\x00", "a\x00", "\ud800",
                         "a\udfff", "\ud83d\ude00", "\u202e", "x\u2066y", "\x85", "\u200b", "\ufeff", "\u2028",
                         "NaN", ":x", "x" * 201, "p" * 65, "t" * (TEXT_LIMIT + 1)])
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)  # surrogates included
TEXTS = st.one_of(NASTY, ANY_TEXT, st.text(max_size=10))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXTS)
JSON_VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(TEXTS, children, max_size=4)), max_leaves=20)


ITEM_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,30}", fullmatch=True)
METADATA_KEY = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True)
VALID_FIELDS = {"schema_version": st.just(1), "project_id": st.just("p"), "item_id": ITEM_ID,
                "text": st.text(min_size=1, max_size=60), "gold_label": st.sampled_from(["positive", "negative", ""]),
                "metadata": st.dictionaries(METADATA_KEY, st.text(max_size=20), max_size=4)}
# a valid-looking item, then up to three fields (or an unknown one) replaced by anything
VALID_DOCS = st.fixed_dictionaries({k: VALID_FIELDS[k] for k in ("project_id", "item_id", "text")},
                                   optional={k: VALID_FIELDS[k] for k in ("schema_version", "gold_label", "metadata")})
FUZZED_FIELDS = st.dictionaries(st.sampled_from(["schema_version", "project_id", "item_id", "text", "gold_label",
                                                 "metadata", "colour"]),
                                st.one_of(NASTY, TEXTS, JSON_VALUES, st.dictionaries(TEXTS, TEXTS, max_size=5)),
                                max_size=3)
ITEM_DOCS = st.builds(lambda doc, fuzz: {**doc, **fuzz}, VALID_DOCS, FUZZED_FIELDS)


def nested(doc: object, levels: int, key: bool) -> object:
    for _ in range(levels):
        doc = {"a": doc} if key else [doc]
    return doc


@FUZZ
@given(st.binary(max_size=RECORD_LIMIT + 16), st.sampled_from(["", "application/json", "application/x-protobuf"]))
def test_property_arbitrary_bytes(value, content_type):
    accepted_or_rejected(value, content_type)


@FUZZ
@given(st.one_of(JSON_VALUES, ITEM_DOCS, st.builds(nested, ITEM_DOCS, st.integers(0, 12), st.booleans())),
       st.booleans())
def test_property_json_documents(doc, ensure_ascii):
    value = json.dumps(doc, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    accepted_or_rejected(value, "application/json")
    accepted_or_rejected(value)


def test_property_item_shaped_json_is_sometimes_accepted():
    accepted = []

    @FUZZ
    @given(ITEM_DOCS.filter(lambda doc: all(isinstance(doc.get(k, ""), str) for k in ("project_id", "item_id"))))
    def run(doc):
        item = accepted_or_rejected(json.dumps(doc).encode())
        if item is not None:  # an accepted item is the document's values, unchanged
            assert (item.project_id, item.item_id, item.text) == (doc["project_id"], doc["item_id"], doc["text"])
            accepted.append(item)

    run()
    assert len(accepted) >= 10  # the strategy reaches valid items, so the property is not vacuous


PROTO_STRINGS = st.one_of(st.sampled_from(["p", "1", "positive", "good film", "", "a\x00", "\u202e", "x" * 201]),
                          ANY_TEXT)


PROTO_FUZZ = {"schema_version": st.sampled_from([0, 2, 99]), "project_id": PROTO_STRINGS, "item_id": PROTO_STRINGS,
              "text": PROTO_STRINGS, "gold_label": PROTO_STRINGS,
              "metadata": st.dictionaries(PROTO_STRINGS, PROTO_STRINGS, max_size=4),
              "ingested_at_ms": st.integers(-(2 ** 63), 2 ** 63 - 1)}


@st.composite
def protobuf_items(draw) -> bytes:
    """A valid-looking Item with up to three fields replaced by anything protobuf can hold."""
    fields = draw(st.fixed_dictionaries(VALID_FIELDS))
    for name in draw(st.lists(st.sampled_from(sorted(PROTO_FUZZ)), max_size=3, unique=True)):
        fields[name] = draw(PROTO_FUZZ[name])
    try:
        item = events_pb2.Item(**fields)
    except ValueError:  # protobuf refuses a str it cannot encode (an unpaired surrogate)
        assume(False)
    return item.SerializeToString()


def mutated(value: bytes, data: st.DataObject) -> bytes:
    choice = data.draw(st.sampled_from(["truncate", "flip", "splice", "as is"]))
    if choice == "truncate" and value:
        return value[:data.draw(st.integers(0, len(value) - 1))]
    if choice == "flip" and value:
        buffer = bytearray(value)
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(buffer) - 1))
            buffer[position] ^= 1 << data.draw(st.integers(0, 7))
        return bytes(buffer)
    if choice == "splice":
        return value + data.draw(st.binary(max_size=16))
    return value


def test_property_protobuf_items_fuzzed_truncated_and_flipped():
    accepted = []

    @FUZZ
    @given(protobuf_items(), st.data())
    def run(value, data):
        item = accepted_or_rejected(mutated(value, data), data.draw(st.sampled_from(["application/x-protobuf", ""])))
        if item is not None:
            accepted.append(item)

    run()
    assert len(accepted) >= 10


SCALAR_BY_TYPE = {
    FieldDescriptor.TYPE_STRING: PROTO_STRINGS, FieldDescriptor.TYPE_BYTES: st.binary(max_size=20),
    FieldDescriptor.TYPE_BOOL: st.booleans(), FieldDescriptor.TYPE_ENUM: st.integers(0, 3),
    FieldDescriptor.TYPE_INT32: st.integers(-(2 ** 31), 2 ** 31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2 ** 63), 2 ** 63 - 1),
    FieldDescriptor.TYPE_DOUBLE: st.floats(), FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
}
MESSAGE_TYPES = [events_pb2.HumanTask, events_pb2.Prediction, events_pb2.DeadLetter, events_pb2.FinalLabel,
                 events_pb2.HumanResponse, events_pb2.RouteDecision, events_pb2.QualityEvent, events_pb2.ProjectSpec,
                 events_pb2.FewShotExample, events_pb2.ModelVote]


@st.composite
def other_messages(draw) -> bytes:
    message_type = draw(st.sampled_from(MESSAGE_TYPES))
    message = message_type()
    for descriptor in message_type.DESCRIPTOR.fields:
        values = SCALAR_BY_TYPE.get(descriptor.type)
        if values is None or not draw(st.booleans()):
            continue  # nested messages stay empty
        try:
            if descriptor.is_repeated:
                getattr(message, descriptor.name).extend(draw(st.lists(values, max_size=3)))
            else:
                setattr(message, descriptor.name, draw(values))
        except ValueError:  # an unencodable str: leave the field unset
            continue
    return message.SerializeToString()


@FUZZ
@given(other_messages(), st.data())
def test_property_other_message_types(value, data):
    accepted_or_rejected(mutated(value, data), data.draw(st.sampled_from(["application/x-protobuf", ""])))
