"""The Triton model's classifier loaded in-process, for offline evaluation and tests.

It runs exactly the code and weights Triton serves (deploy/triton/models/encoder_fewshot)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from labelstream.v1 import events_pb2

MODEL_DIR = Path(__file__).resolve().parents[3] / "deploy" / "triton" / "models" / "encoder_fewshot"


def load_encoder_classifier() -> Any:
    spec = importlib.util.spec_from_file_location("encoder_fewshot_model", MODEL_DIR / "1" / "model.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the model code from {MODEL_DIR / '1' / 'model.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FewShotEncoderClassifier(MODEL_DIR / "tokenizer.json")


def project_dict(spec: events_pb2.ProjectSpec) -> dict[str, Any]:
    return {"labels": list(spec.labels), "examples": [{"text": e.text, "label": e.label} for e in spec.examples]}
