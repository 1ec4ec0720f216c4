"""The other processes wait while the main one works alone (a preview), outside the run's collectives.

A collective of the training group has a timeout (ten minutes for NCCL) that a slow preview on a
slow device must not run into, so the wait is a barrier of a process group of its own, made with
torch.distributed's public API and a timeout long enough for any preview on any device.
"""

from __future__ import annotations

from datetime import timedelta

import torch.distributed as dist

# Long enough for any preview on any device; the launcher ends the others if the main one dies.
MAIN_PROCESS_WAIT = timedelta(hours=12)


class MainProcessWait:
    """Made by every process together; then the main one calls ``done`` when its work is on disk
    and the others ``wait`` for that. With one process both do nothing."""

    def __init__(self, processes: int) -> None:
        self.group = None
        if processes > 1:
            # gloo waits on the CPU, whatever backend trains, and takes its own timeout.
            self.group = dist.new_group(backend="gloo", timeout=MAIN_PROCESS_WAIT)

    def done(self) -> None:
        self._meet()

    def wait(self) -> None:
        self._meet()

    def _meet(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)
