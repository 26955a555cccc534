"""How every tickbook process tells its user what happened: exit statuses and log lines.

One set of exit statuses for every command and server (docs/architecture.md#exit-statuses):

    EXIT_OK           0  done
    EXIT_FAILURE      1  a run that started and failed (a peer died, a simulator failed, a timeout)
    EXIT_USAGE        2  an error the user can fix: a missing file, a bad venue or flag, an
                         address in use, a segment of another layout; one line names it
    EXIT_ENGINE_GONE  3  the gateway's engine ended under it (the pod restarts the pair)

Servers that share a terminal or a pod's log prefix every line with `name[pid]: `; each line
goes out in one write, so the lines of two processes on the same file never interleave.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_ENGINE_GONE = 3


def cannot_write(folder) -> str:
    """Why this process cannot write files into `folder` (the OS's reason), or '' when it can:
    the folder is made if missing, then a temporary file is created and dropped in it. For the
    one-line refusals of a read-only image or volume, before anything else starts."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        return e.strerror or str(e)
    return ""


def process_logger(name: str, stream=None) -> Callable[[str], None]:
    """A function that writes `name[pid]: msg` lines to stderr (looked up at each call, so a
    caller that redirects sys.stderr is followed)."""

    def log(msg: str) -> None:
        out = stream or sys.stderr
        out.write(f"{name}[{os.getpid()}]: {msg}\n")  # the pid now: a forked child logs its own
        out.flush()

    return log
