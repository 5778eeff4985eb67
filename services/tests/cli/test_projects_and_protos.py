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
