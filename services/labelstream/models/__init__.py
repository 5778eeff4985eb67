"""The labelstream model contract that the inference service and every Triton model's model.py
share (TEXT and PROJECT in, PROBS out), and the Triton models loaded in-process for offline
evaluation and tests."""
