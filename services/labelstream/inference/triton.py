"""The Triton contract: TEXT + PROJECT (JSON of labels and examples) in, PROBS out."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from labelstream.common.failures import retry_passing_failures
from labelstream.common.sizing import TimeBudgetSizer
from labelstream.models.contract import project_payload
from labelstream.v1 import events_pb2

MAX_ROWS_PER_REQUEST = 64  # the model's max_batch_size
FIRST_ROWS_PER_REQUEST = 8  # until a model's speed is known
REQUEST_SHARE_OF_TIMEOUT = 0.25  # a request is sized to take about this share of the timeout


@dataclass(frozen=True)
class ModelOutput:
    probabilities: np.ndarray  # (rows, labels)
    model_name: str
    model_version: str


# Retried here, with backoff, before the consumer's failure policy sees the error, timeouts too.
# Leaving DEADLINE_EXCEEDED to the consumer alone was tried: under load the causal LM's batches
# timed out again and again, Triton's readiness probe timed out as well, and the consumer held
# the batch as an outage for over 7 minutes (the two-voter test); retried here, a request queued
# behind the one that timed out has so far always been answered.
RETRIED_STATUSES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


def worth_retrying(error: BaseException) -> bool:
    return isinstance(error, InferenceServerException) and any(s in str(error.status()) for s in RETRIED_STATUSES)


class RequestSizer(TimeBudgetSizer):
    """Rows per request, per model, sized to a quarter of the client's timeout from the model's
    measured speed (labelstream.common.sizing). With a slow model on a slow machine (the causal LM,
    64 rows, more than 30 s) every try timed out and the work piled up; a fast model still gets
    full batches."""

    def __init__(self, timeout_s: float, smoothing: float = 0.3) -> None:
        super().__init__(timeout_s * REQUEST_SHARE_OF_TIMEOUT, FIRST_ROWS_PER_REQUEST, MAX_ROWS_PER_REQUEST,
                         smoothing)
        self.timeout_s = timeout_s

    def rows(self, model: str) -> int:
        return self.size(model)


class TritonClassifier:
    """Calls one Triton server: at most `max_concurrency` requests in flight, each sized to the
    model's measured speed (RequestSizer), retries with exponential backoff while Triton is
    UNAVAILABLE, then gives up (the consumer's failure policy retries the record)."""

    def __init__(self, url: str, timeout_s: float, max_concurrency: int = 2, retries: int = 4) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.client = triton_grpc.InferenceServerClient(url)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="triton")
        self.sizer = RequestSizer(timeout_s)

    def _thread_client(self) -> triton_grpc.InferenceServerClient:
        if not hasattr(self._local, "client"):
            self._local.client = triton_grpc.InferenceServerClient(self.url)
        return self._local.client

    def ready(self, model: str | None = None, version: str = "") -> bool:
        try:
            if model:
                return bool(self.client.is_model_ready(model, version))
            return bool(self.client.is_server_ready())
        except InferenceServerException:
            return False

    def _infer(self, model: str, version: str, rows: list[str], payload: bytes) -> tuple[np.ndarray, str, str]:
        text_input = triton_grpc.InferInput("TEXT", [len(rows), 1], "BYTES")
        text_input.set_data_from_numpy(np.array([[t.encode()] for t in rows], dtype=object))
        project_input = triton_grpc.InferInput("PROJECT", [len(rows), 1], "BYTES")
        project_input.set_data_from_numpy(np.array([[payload]] * len(rows), dtype=object))
        started = time.monotonic()
        try:
            result = retry_passing_failures(self.retries, worth_retrying)(
                self._thread_client().infer, model, [text_input, project_input], model_version=version,
                outputs=[triton_grpc.InferRequestedOutput("PROBS")], client_timeout=self.timeout_s)
        except InferenceServerException as error:
            if "DEADLINE_EXCEEDED" in str(error.status()):  # slower than measured: smaller requests next
                self.sizer.observe(model, len(rows), self.timeout_s * 2)
            raise
        self.sizer.observe(model, len(rows), time.monotonic() - started)
        response = result.get_response()
        return result.as_numpy("PROBS"), response.model_name, response.model_version

    def predict(self, model: str, texts: list[str], spec: events_pb2.ProjectSpec, version: str = "") -> ModelOutput:
        """Probabilities for `texts` from `model` (a pinned `version`, or the latest)."""
        payload = project_payload(spec)
        size = self.sizer.rows(model)
        chunks = [texts[start:start + size] for start in range(0, len(texts), size)]
        results = list(self._pool.map(lambda rows: self._infer(model, version, rows, payload), chunks))
        probabilities = np.concatenate([r[0] for r in results]).astype(np.float64)
        if probabilities.shape != (len(texts), len(spec.labels)):
            raise RuntimeError(f"model {model} returned shape {probabilities.shape}, expected "
                               f"{(len(texts), len(spec.labels))}")
        versions = {r[2] for r in results}
        if len(versions) > 1:  # a new version went live between chunks: the caller retries the batch
            raise RuntimeError(f"model {model} answered one batch with versions {sorted(versions)}")
        return ModelOutput(probabilities, results[0][1], results[0][2])

    def load(self, model: str) -> None:
        """Ask Triton (explicit model control) to load the model's versions anew."""
        self.client.load_model(model)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.client.close()
