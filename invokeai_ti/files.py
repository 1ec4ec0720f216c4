"""Writing a file so that no reader ever sees half of it, and nothing is written through a link.

Every file a run writes (embeddings, checkpoints, previews, the report, saved preferences, the
logs, the lock's owner) goes through ``atomic_write`` or ``create_file``, so a crash, a full disk
or Ctrl-C leaves the old file or the new one and never a torn one, and a symbolic link someone
planted where a file will be written is refused instead of followed (it could point at any file
the user can write). It lives apart from any file format so that the lowest layers can use it
without importing torch.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import UserError

# The names of atomic_write's temporary files: hidden, and ending in what no tool loads.
TEMPORARY_NAME = re.compile(r"^\..+\.tmp-(\d+)$")
# Below this much free space a write that failed without saying why failed for want of room:
# torch.save reports a full disk as a bare "iostream error".
NEARLY_FULL_BYTES = 1 << 20
# Created without following a link, and never over a file that is already there.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def disk_full_message(path: Path) -> str:
    return (
        f"The disk holding {path.parent} is full; free some space (or choose another output "
        "folder) and run again: files written earlier are intact."
    )


def link_message(path: Path) -> str:
    return (
        f"{path} is a symbolic link, and the trainer never writes through a link (it could point at "
        "any file you own); delete the link and run again."
    )


def refuse_link(path: Path) -> None:
    """A link where a file (or a folder) of ours will be written is refused with a sentence."""
    if path.is_symlink():
        raise UserError(link_message(path))


def temporary_name(name: str, pid: int | None = None) -> str:
    """The name a file called ``name`` has while process ``pid`` (this one) writes it."""
    return f".{name}.tmp-{os.getpid() if pid is None else pid}"


def temporary_path(path: Path, folder: Path | None = None) -> Path:
    """Where ``path`` is written before it is renamed into place: in ``folder`` (its own by default)."""
    return (folder or path.parent) / temporary_name(path.name)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn what a failed write raises into one sentence naming ``path``.

    A full disk is an ``OSError`` from Python but a ``RuntimeError`` from torch.save and
    safetensors (their C++ streams say only "iostream error"), so free space decides what to say.
    """
    try:
        yield
    except UserError:
        raise
    except (OSError, RuntimeError) as error:
        code = getattr(error, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT) or _nearly_full(path.parent):
            raise UserError(disk_full_message(path)) from error
        reason = getattr(error, "strerror", None) or " ".join(str(error).split()) or type(error).__name__
        raise UserError(
            f"{path} could not be written ({reason}); check that its folder can be written and has "
            "free space, and run again: files written earlier are intact."
        ) from error


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def atomic_write(path: Path, write: Callable[[Path], object], *, staging: Path | None = None) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    ``os.replace`` is atomic on one filesystem, so readers see the old file or the new one, never
    a torn one; it replaces a link rather than following it, and the temporary file is created
    with ``O_EXCL | O_NOFOLLOW``, so nothing is ever written through a link. The temporary file is
    created here first so that it gets the permissions the user's umask gives any new file, and
    that mode is put back after ``write``: some writers (safetensors) replace the file with a
    private one, which InvokeAI running as another user, or a shared model folder, could not read.
    ``staging`` is the folder the temporary file is written in, when ``path``'s own folder must
    never hold one (a folder whose every file a program loads); when it turns out to be on
    another disk than ``path``, the file is written beside ``path`` after all, since a rename
    cannot cross disks.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path)
    if staging is not None and staging.stat().st_dev != path.parent.stat().st_dev:
        staging = None
    tmp = temporary_path(path, staging)
    try:
        with writing(path):
            # One left by a killed process that had this pid, or a planted link: removed, never opened.
            tmp.unlink(missing_ok=True)
            handle = os.open(tmp, _CREATE_FLAGS, 0o666)
            try:
                mode = stat.S_IMODE(os.fstat(handle).st_mode)
            finally:
                os.close(handle)
            write(tmp)
            os.chmod(tmp, mode)
            with open(tmp, "rb+") as synced:
                os.fsync(synced.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_file(path: Path) -> IO[str]:
    """A new, empty text file at ``path``, for a log written as a run goes; the old file is removed.

    Opened with ``O_EXCL | O_NOFOLLOW``: a link planted at ``path`` is refused, never followed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path)
    with writing(path):
        path.unlink(missing_ok=True)
        return os.fdopen(os.open(path, _CREATE_FLAGS, 0o666), "w", newline="", encoding="utf-8")


def clear_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporary files a killed process left in ``folder`` (those of ``name`` only, when
    given); returns what was removed. A temporary file of a process still running is left alone.
    """
    removed = []
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            match = TEMPORARY_NAME.match(path.name)
            if name is not None and not path.name.startswith(f".{name}.tmp-"):
                continue
            if match and not path.is_dir() and not _running(int(match.group(1))):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class DamagedFile(ValueError):
    """A file read back that is not what the trainer wrote; ``str()`` names it and the reason."""


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``DamagedFile`` for one that is not (a list, bad bytes, cut short)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise DamagedFile(f"{path} is not UTF-8 text") from error
    except ValueError as error:
        raise DamagedFile(f"{path} is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def json_object_or_empty(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when it is missing or damaged: for a model's config
    files, where a file that cannot be read only means its facts are unknown, and the part that
    needs them is refused later with its own sentence."""
    try:
        return read_json_object(path)
    except (OSError, DamagedFile):
        return {}
