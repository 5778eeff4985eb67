"""The Triton contract: TEXT + PROJECT (JSON of labels and examples) in, PROBS out."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from labelstream.v1 import events_pb2

MAX_ROWS_PER_REQUEST = 64  # the model's max_batch_size


@dataclass(frozen=True)
class ModelOutput:
    probabilities: np.ndarray  # (rows, labels)
    model_name: str
    model_version: str


def project_payload(spec: events_pb2.ProjectSpec) -> bytes:
    """What the model needs to know about a project, as the PROJECT input."""
    return json.dumps({
        "labels": list(spec.labels),
        "instructions": spec.instructions,
        "examples": [{"text": e.text, "label": e.label} for e in spec.examples],
    }, sort_keys=True).encode()


class TritonClassifier:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client = triton_grpc.InferenceServerClient(url)

    def ready(self, model: str | None = None) -> bool:
        try:
            if model:
                return bool(self.client.is_model_ready(model))
            return bool(self.client.is_server_ready())
        except InferenceServerException:
            return False

    def predict(self, model: str, texts: list[str], spec: events_pb2.ProjectSpec) -> ModelOutput:
        payload = project_payload(spec)
        chunks, name, version = [], model, ""
        for start in range(0, len(texts), MAX_ROWS_PER_REQUEST):
            rows = texts[start:start + MAX_ROWS_PER_REQUEST]
            text_input = triton_grpc.InferInput("TEXT", [len(rows), 1], "BYTES")
            text_input.set_data_from_numpy(np.array([[t.encode()] for t in rows], dtype=object))
            project_input = triton_grpc.InferInput("PROJECT", [len(rows), 1], "BYTES")
            project_input.set_data_from_numpy(np.array([[payload]] * len(rows), dtype=object))
            result = self.client.infer(
                model, [text_input, project_input],
                outputs=[triton_grpc.InferRequestedOutput("PROBS")], client_timeout=self.timeout_s)
            chunks.append(result.as_numpy("PROBS"))
            response = result.get_response()
            name, version = response.model_name, response.model_version
        probabilities = np.concatenate(chunks).astype(np.float64)
        if probabilities.shape != (len(texts), len(spec.labels)):
            raise RuntimeError(f"model {model} returned shape {probabilities.shape}, expected "
                               f"{(len(texts), len(spec.labels))}")
        return ModelOutput(probabilities, name, version)

    def close(self) -> None:
        self.client.close()
