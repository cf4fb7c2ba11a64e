"""Files the library writes: every result, cache and checkpoint appears whole or not at all.

:func:`atomic_path` yields a temporary name beside the final one and renames it onto the final
name only when the block succeeds, so a reader never sees a half-written file (a crash or a
Ctrl-C leaves the old file, or none).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike):
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block
    succeeds (nothing half-written is ever visible under the final name)."""
    final = Path(final)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem}.", suffix=final.suffix + ".tmp")
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are for every reader
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
