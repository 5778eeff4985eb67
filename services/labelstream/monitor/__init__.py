"""Monitor: watches every stream and reports per-project counts, accuracy and latency."""
