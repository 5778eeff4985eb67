"""Create labelstream's Kafka topics that do not exist yet (the Helm chart's topic Job runs this).

Reads the same settings as the services (LABELSTREAM_KAFKA_BOOTSTRAP, LABELSTREAM_KAFKA_TOPIC_PREFIX);
partitions and replication factor are arguments. Existing topics are left as they are; one with
fewer partitions than asked is reported, because growing a topic moves keys to other partitions
and is a decision for its operator (deploy/README.md, "Scaling").

    python create_topics.py --partitions 12 --replication-factor 3
"""

from __future__ import annotations

import argparse
import sys

from labelstream.common.settings import Settings, SettingsError
from labelstream.common.topics import ensure_topics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="create-topics", description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, required=True, help="partitions of each new topic")
    parser.add_argument("--replication-factor", type=int, required=True, help="replicas of each partition")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Kafka")
    args = parser.parse_args(argv)
    if args.partitions < 1 or args.replication_factor < 1:
        parser.error("--partitions and --replication-factor must be at least 1")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"create-topics: {exc}", file=sys.stderr)  # noqa: T201
        return 2

    try:
        topics = ensure_topics(settings, args.partitions, args.replication_factor, args.timeout)
    except RuntimeError as exc:
        print(f"create-topics: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    short = [topic for topic, state in topics.items() if state.partitions < args.partitions]
    for topic, state in topics.items():
        print(f"create-topics: {topic}: {state.partitions} partitions "  # noqa: T201
              f"({'created' if state.created else 'exists'})")
    if short:
        print(f"create-topics: WARNING {', '.join(short)} have fewer than {args.partitions} partitions: "  # noqa: T201
              "consumer-group members beyond their partition count stay idle", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
