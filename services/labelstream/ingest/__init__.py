"""Ingest: validates items, deduplicates by item id, stores them and publishes items.accepted."""
