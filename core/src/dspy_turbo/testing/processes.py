"""Checking that worker processes are gone: for strategies and coordinators that start processes.

A batch that stops early, or a ``turbo.close()``, must leave none of its workers running::

    from dspy_turbo.testing.processes import still_running

    assert not still_running(worker_pids)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable


def is_running(pid: int) -> bool:
    """Whether ``pid`` runs. A process that exited but is not reaped yet (a zombie) has stopped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def still_running(pids: Iterable[int], timeout: float = 60.0, poll: float = 0.05) -> set[int]:
    """The processes of ``pids`` still running after waiting up to ``timeout`` seconds for them
    to stop (empty once all have). A leaked worker stays forever; a loaded machine may take a
    while to stop one, hence the generous default."""
    pids = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        running = {pid for pid in pids if is_running(pid)}
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(poll)
