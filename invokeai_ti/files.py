"""Writing a file so that no reader ever sees half of it.

Every file a run writes (embeddings, checkpoints, previews, the report, saved preferences) goes
through ``atomic_write``, so a crash, a full disk or Ctrl-C leaves the old file or the new one and
never a torn one. It lives apart from any file format so that the lowest layers can use it
without importing torch.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import UserError


def disk_full_message(path: Path) -> str:
    return (
        f"The disk holding {path.parent} is full; free some space (or choose another output "
        "folder) and run again: files written earlier are intact."
    )


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    ``os.replace`` is atomic on one filesystem, so readers see the old file or the new one, never
    a torn one. The temporary file is created here first so that it gets the permissions the
    user's umask gives any new file, and that mode is put back after ``write``: some writers
    (safetensors) replace the file with a private one, which InvokeAI running as another user,
    or a shared model folder, could not read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise UserError(disk_full_message(path)) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
