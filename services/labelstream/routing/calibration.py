"""Calibrating the model's confidence on human-verified items.

Two calibrators are fit per project and model version, each per predicted class so that the
router's thresholds can differ by class: temperature scaling (one parameter, fit by maximum
likelihood) and isotonic regression (monotone, non-parametric). The one with the lower log loss
on held-out verified items wins and is refit on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

EPS = 1e-6


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(error)


def binary_log_loss(confidence: np.ndarray, correct: np.ndarray) -> float:
    p = np.clip(np.asarray(confidence, dtype=float), EPS, 1 - EPS)
    y = np.asarray(correct, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def softmax_confidence(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Top-class probability after dividing the log-probabilities by `temperature`."""
    logits = np.log(np.clip(probabilities, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled.max(axis=1) / scaled.sum(axis=1)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the verified labels."""
    log_p = np.log(np.clip(probabilities, EPS, 1.0))

    def nll(temperature: float) -> float:
        logits = log_p / temperature
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1))
        return float(-(logits[np.arange(len(labels)), labels] - log_norm).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


@dataclass
class Calibrator:
    """Maps model probabilities to a calibrated confidence that the top label is right."""

    method: str                                   # "temperature", "isotonic" or "identity"
    temperature: float = 1.0
    # isotonic: per predicted class, the fitted step function (x, y)
    isotonic: dict[int, tuple[list[float], list[float]]] = field(default_factory=dict)
    held_out_log_loss: dict[str, float] = field(default_factory=dict)
    ece_before: float = float("nan")
    ece_after: float = float("nan")
    n_verified: int = 0

    def confidence(self, probabilities: np.ndarray) -> np.ndarray:
        probabilities = np.atleast_2d(np.asarray(probabilities, dtype=float))
        raw = probabilities.max(axis=1)
        if self.method == "temperature":
            return softmax_confidence(probabilities, self.temperature)
        if self.method == "isotonic":
            predicted = probabilities.argmax(axis=1)
            out = raw.copy()
            for cls, (xs, ys) in self.isotonic.items():
                mask = predicted == cls
                if mask.any():
                    out[mask] = np.interp(raw[mask], xs, ys)
            return out
        return raw

    def to_doc(self) -> dict[str, Any]:
        return {"method": self.method, "temperature": self.temperature,
                "isotonic": {str(k): [list(v[0]), list(v[1])] for k, v in self.isotonic.items()},
                "held_out_log_loss": self.held_out_log_loss, "ece_before": self.ece_before,
                "ece_after": self.ece_after, "n_verified": self.n_verified}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Calibrator:
        return cls(method=doc["method"], temperature=doc.get("temperature", 1.0),
                   isotonic={int(k): (list(v[0]), list(v[1])) for k, v in doc.get("isotonic", {}).items()},
                   held_out_log_loss=doc.get("held_out_log_loss", {}), ece_before=doc.get("ece_before", float("nan")),
                   ece_after=doc.get("ece_after", float("nan")), n_verified=doc.get("n_verified", 0))


def _fit_isotonic(probabilities: np.ndarray, labels: np.ndarray) -> dict[int, tuple[list[float], list[float]]]:
    raw = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1)
    correct = (predicted == labels).astype(float)
    steps: dict[int, tuple[list[float], list[float]]] = {}
    for cls in np.unique(predicted):
        mask = predicted == cls
        if mask.sum() < 2:
            continue
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw[mask], correct[mask])
        steps[int(cls)] = ([float(x) for x in model.X_thresholds_], [float(y) for y in model.y_thresholds_])
    return steps


def fit_calibrator(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0,
                   held_out_fraction: float = 0.3) -> Calibrator:
    """Fit temperature scaling and isotonic regression, keep the one with the lower held-out log loss."""
    probabilities = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    if n < 10:
        return Calibrator("identity", n_verified=n, ece_before=expected_calibration_error(
            probabilities.max(axis=1), correct))
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(n * held_out_fraction))
    test, train = order[:cut], order[cut:]
    candidates = {
        "temperature": Calibrator("temperature", temperature=fit_temperature(probabilities[train], labels[train])),
        "isotonic": Calibrator("isotonic", isotonic=_fit_isotonic(probabilities[train], labels[train])),
    }
    losses = {name: binary_log_loss(c.confidence(probabilities[test]), correct[test])
              for name, c in candidates.items()}
    best = min(losses, key=losses.__getitem__)
    chosen = (Calibrator("temperature", temperature=fit_temperature(probabilities, labels)) if best == "temperature"
              else Calibrator("isotonic", isotonic=_fit_isotonic(probabilities, labels)))
    chosen.held_out_log_loss = losses
    chosen.n_verified = n
    chosen.ece_before = expected_calibration_error(probabilities.max(axis=1), correct)
    chosen.ece_after = expected_calibration_error(chosen.confidence(probabilities), correct)
    return chosen
