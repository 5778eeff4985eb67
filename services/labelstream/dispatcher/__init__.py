"""Dispatcher: a task pool that leases human tasks to workers and publishes their answers."""
