"""Waiting for what another OS process does (a file it writes, a process that exits).

There is no event to wait on across processes, so these tests poll, bounded by a deadline;
timers inside one process use trio's autojump clock instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.1


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(POLL_S)
    return True
