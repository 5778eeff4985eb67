"""One project contract: a project applied over gRPC with only its required fields is stored with
exactly the defaults the YAML path gives, and both read back resolved from the owner's API."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from labelstream.cli import client
from labelstream.cli.projects import load_project
from labelstream.common.channels import open_channel
from labelstream.common.projects import DEFAULT_WORKER_POLICY, DEFAULTS, EXTRA_OVERLAP
from labelstream.v1 import events_pb2, services_pb2, services_pb2_grpc

pytestmark = pytest.mark.integration


def get_project(state, project_id: str) -> events_pb2.ProjectSpec:
    with open_channel(state.grpc_target("ingest")) as channel:
        return services_pb2_grpc.IngestServiceStub(channel).GetProject(
            services_pb2.GetProjectRequest(project_id=project_id), timeout=30)


def test_a_minimal_project_over_grpc_gets_the_defaults_the_yaml_path_gives(state, tmp_path: Path):
    bare = events_pb2.ProjectSpec(project_id="contract-grpc", labels=["negative", "positive"])
    client.apply_project(state.grpc_target("ingest"), bare)
    yaml_file = tmp_path / "project.yaml"
    yaml_file.write_text("project_id: contract-yaml\nlabels: [negative, positive]\n")
    client.apply_project(state.grpc_target("ingest"), load_project(yaml_file))

    over_grpc, from_yaml = get_project(state, "contract-grpc"), get_project(state, "contract-yaml")
    as_dict = [json_format.MessageToDict(s, preserving_proto_field_name=True) for s in (over_grpc, from_yaml)]
    for doc in as_dict:
        doc.pop("project_id")
    assert as_dict[0] == as_dict[1], "the two paths store different projects"
    for name, default in DEFAULTS.items():
        assert getattr(over_grpc, name) == default, name
    assert over_grpc.max_overlap == DEFAULTS["overlap"] + EXTRA_OVERLAP
    for field, default in DEFAULT_WORKER_POLICY.ListFields():
        assert getattr(over_grpc.workers, field.name) == default, field.name


def test_an_invalid_project_is_refused_with_every_problem_named(state):
    spec = events_pb2.ProjectSpec(project_id="contract-bad", labels=["only"], routing_strategy="psychic",
                                  aggregation="coin_flip", overflow="somewhere")
    with pytest.raises(grpc.RpcError) as refused:
        client.apply_project(state.grpc_target("ingest"), spec)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for phrase in ("labels must list at least two", "routing_strategy must be one of", "aggregation must be one of",
                   "overflow must be one of"):
        assert phrase in refused.value.details(), phrase
