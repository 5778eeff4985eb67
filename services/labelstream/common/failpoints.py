"""Named crash points for crash tests.

`LABELSTREAM_FAILPOINTS=name[,name...]` makes a process kill itself with SIGKILL when it
reaches one of the named points, so that a test can stop a service exactly between two of its
writes (a block stored, its event not yet published) and show what a restart recovers. Empty in
production; a test environment variable, not a setting.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)
ARMED = frozenset(name.strip() for name in os.environ.get("LABELSTREAM_FAILPOINTS", "").split(",") if name.strip())


def failpoint(name: str) -> None:
    if name in ARMED:
        log.warning("failpoint reached: killing this process", extra={"fields": {"failpoint": name}})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
