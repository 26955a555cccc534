"""Files that survive a crash of the machine: a new name made durable.

A snapshot (engine/snapshot.py), the owners beside it (offload/recovery.py) and a new journal
file (offload/journal.py) are written, synced, and then renamed or created; the rename or the
creation is durable only once the directory that holds the name is synced too.
"""

from __future__ import annotations

import os


def fsync_dir(directory) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp, path) -> None:
    """Rename a written and synced temporary file over path, and make the rename durable."""
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
