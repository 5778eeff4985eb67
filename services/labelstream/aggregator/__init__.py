"""Aggregator: merges votes into exactly one final label per item."""
