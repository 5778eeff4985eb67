"""Inference: micro-batches accepted items through a model on Triton into predictions."""
