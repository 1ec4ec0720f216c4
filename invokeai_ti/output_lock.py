"""One training per output folder at a time.

Two runs writing the same checkpoints and embedding would interleave their files. The lock is a
small file naming the owning process; a lock whose process is gone (killed, crashed, machine
rebooted) is recognised as stale and cleared, so a SIGKILL never blocks the next run.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .errors import UserError

LOCK_NAME = ".training.lock"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class OutputLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.held = False

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was cleared on the way."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        note = None
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and self._is_live(owner):
                    raise UserError(
                        f"Another training (process {owner.get('pid')} on {owner.get('host')}) is "
                        f"writing to {self.path.parent}; wait for it to finish or choose another "
                        f"output folder (if no training is running, delete {self.path})."
                    ) from None
                self.path.unlink(missing_ok=True)
                pid = owner.get("pid") if owner else "unknown"
                note = f"Cleared a lock left by process {pid}, which is no longer running."
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, handle)
            self.held = True
            return note
        raise UserError(f"Could not lock {self.path.parent}; delete {self.path} and run again.")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    @staticmethod
    def _is_live(owner: dict) -> bool:
        if owner.get("host") != socket.gethostname():
            return True
        pid = owner.get("pid")
        return isinstance(pid, int) and process_alive(pid)
