"""One training per output folder at a time.

Two runs writing the same checkpoints and embedding would interleave their files. The lock is a
kernel file lock (``filelock``): the kernel releases it when the process dies however it dies, so
a SIGKILL never blocks the next run and two runs can never both take it. Beside it, a small file
names the owner, so a refused run can say who holds the folder and the next run can say that an
earlier one was killed. A run that ends normally takes both files away with it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import UserError
from ..files import atomic_write, refuse_link
from .layout import LOCK_NAME, OWNER_NAME


class OutputLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.owner_path = folder / OWNER_NAME
        self.lock = FileLock(str(self.path), thread_local=False)

    @property
    def held(self) -> bool:
        return self.lock.is_locked

    def acquire(self) -> str | None:
        """Take the lock; returns a note when an earlier run had died holding it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        refuse_link(self.path)
        refuse_link(self.owner_path)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            owner = self._owner() or {}
            raise UserError(
                f"Another training (process {owner.get('pid', 'unknown')} on "
                f"{owner.get('host', 'this machine')}) is writing to {self.path.parent}; wait for it "
                "to finish or choose another output folder."
            ) from None
        note = None
        previous = self._owner()
        if previous is not None:
            note = f"Cleared a lock left by process {previous.get('pid', 'unknown')}, which is no longer running."
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        try:
            atomic_write(self.owner_path, lambda tmp: tmp.write_text(owner, encoding="utf-8"))
        except UserError:
            self.lock.release()
            raise
        return note

    def release(self) -> None:
        """Give the folder back, leaving no lock file in it.

        The lock file is removed while it is still held: a run that opened it a moment before
        and locks it after the release finds a file that no longer exists, and filelock opens a
        new one instead of holding a lock nobody else can see.
        """
        if self.held:
            self.owner_path.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
            self.lock.release()

    def _owner(self) -> dict | None:
        if self.owner_path.is_symlink():
            return None
        try:
            owner = json.loads(self.owner_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None
