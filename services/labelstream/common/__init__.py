"""The one place for code every service shares: settings, Kafka, store, telemetry, lifecycle."""
