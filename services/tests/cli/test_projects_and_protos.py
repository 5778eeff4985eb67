import subprocess
import sys
from pathlib import Path

import pytest

from labelstream.cli.projects import InputFileError, load_items, load_project

ROOT = Path(__file__).resolve().parents[3]


def test_demo_project_loads():
    spec = load_project(ROOT / "deploy" / "examples" / "sst2" / "project.yaml")
    assert list(spec.labels) == ["negative", "positive"] and len(spec.examples) == 32
    assert spec.max_overlap == 5


def test_the_guaranteed_demo_project_extends_the_sst2_project():
    base = load_project(ROOT / "deploy" / "examples" / "sst2" / "project.yaml")
    demo = load_project(ROOT / "deploy" / "examples" / "sst2" / "demo.yaml")
    assert demo.examples == base.examples and demo.labels == base.labels and demo.instructions == base.instructions
    assert (demo.project_id, demo.routing_strategy, demo.target_accuracy) == ("sst2-guaranteed", "calibrated", 0.85)
    assert demo.workers.min_hourly_wage == 12.0 and demo.workers.block_confidence == base.workers.block_confidence


def test_extends_merges_worker_policies_and_refuses_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text("project_id: b\nlabels: [a, b]\noverlap: 2\n"
                                        "workers: {gold_rate_new: 0.3, trusted_after: 7}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nproject_id: c\nworkers: {trusted_after: 9}\n")
    child = load_project(tmp_path / "child.yaml")
    assert (child.project_id, child.overlap, list(child.labels)) == ("c", 2, ["a", "b"])
    assert (child.workers.gold_rate_new, child.workers.trusted_after) == (0.3, 9)
    (tmp_path / "base.yaml").write_text("extends: child.yaml\nproject_id: b\n")
    with pytest.raises(InputFileError, match="remove the cycle"):
        load_project(tmp_path / "child.yaml")
    (tmp_path / "lonely.yaml").write_text("extends: missing.yaml\nproject_id: x\n")
    with pytest.raises(InputFileError, match="missing.yaml: cannot read"):
        load_project(tmp_path / "lonely.yaml")


def test_project_file_errors_name_the_problem(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("project_id: x\nlabels: [a, b]\ncolour: red\n")
    with pytest.raises(InputFileError, match="unknown keys \\['colour'\\]"):
        load_project(path)
    path.write_text("project_id: x\nlabels: [a, b]\nexamples: [{text: hi}]\n")
    with pytest.raises(InputFileError, match="examples\\[0\\]"):
        load_project(path)


def test_items_from_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text('{"item_id": "1", "text": "a", "gold_label": "pos"}\n\n{"item_id": "2", "text": "b"}\n')
    assert [i["item_id"] for i in load_items(jsonl)] == ["1", "2"]
    csv = tmp_path / "items.csv"
    csv.write_text("item_id,text,gold_label\n1,hello,\n2,world,pos\n")
    rows = load_items(csv)
    assert "gold_label" not in rows[0] and rows[1]["gold_label"] == "pos"
    jsonl.write_text('{"item_id": "1", "text": "a"}\nnot json\n')
    with pytest.raises(InputFileError, match="items.jsonl:2"):
        load_items(jsonl)


def test_generated_protobuf_code_matches_the_proto_files():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
