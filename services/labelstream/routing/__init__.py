"""Routing statistics the router service and the offline evaluation share: calibration of the
model's confidence on verified items, thresholds for a target accuracy with a confidence bound,
routing models (calibrated or meta-classifier scores) and the evaluation of routing strategies.
Pure code: no I/O, and it imports no service."""
