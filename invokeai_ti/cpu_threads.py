"""How many CPU threads torch computes with: one per core that other programs leave idle.

torch starts one OpenMP thread per core, and every operation waits for its slowest thread. On a
CPU shared with busy programs the scheduler puts one of them behind another program for a time
slice, so each operation costs a slice instead of its own few microseconds: on a 2-core CPU with
two other busy processes, one UNet forward of the world model took 1.3 s with torch's two threads
and 0.04 s with one, and the 32-second demo took 35 minutes (issue 25). With only as many threads
as there are idle cores, a busy machine slows a run in proportion to its load. On an idle
machine nothing changes: every core is idle, and torch's own count is kept.

The load is measured, not guessed from the model: ``/proc/stat`` counts every core's busy time,
and this process's own CPU time is taken out of it, so its threads never count as load. It is
measured for a moment before training and again every few seconds between steps, since other
programs come and go during a run.

``OMP_NUM_THREADS`` decides instead when it is set (torch reads it itself), and then nothing
changes during a run. The thread count is one of the things that round float sums differently,
so runs that must repeat bit for bit on a CPU fix it: with ``OMP_NUM_THREADS``, or
``--deterministic``, which trains with one thread whatever the machine.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
# How long the first look at the load lasts, and how often it is looked at again during a run.
FIRST_LOOK_S = 0.25
LOOK_EVERY_S = 5.0
# A thread on a core that another program keeps busy part of the time still stalls every
# operation; a core counts as idle for a thread of ours only when at least this much of it is.
IDLE_ENOUGH = 0.8
ENV = "OMP_NUM_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (a container or ``taskset`` may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fixed_threads() -> int | None:
    """The thread count ``OMP_NUM_THREADS`` fixes, or None when it is unset or not a count."""
    text = os.environ.get(ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def busy_core_seconds() -> float | None:
    """Seconds of CPU time all cores have spent busy since boot; None where /proc/stat is missing."""
    try:
        fields = PROC_STAT.read_text(encoding="ascii").split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu  user nice system idle iowait irq softirq steal guest guest_nice (guests are in user)
    ticks = [int(value) for value in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def threads_for(idle_cores: float, cores: int) -> int:
    """One thread per core that is idle enough, at least one and at most every core."""
    return max(1, min(cores, math.floor(idle_cores + 1 - IDLE_ENOUGH)))


def look() -> tuple[Reading, float] | None:
    """How many cores other programs keep busy, over a short look now, and the reading it ended
    with; None where the load cannot be read."""
    first = Reading.now()
    if first is None:
        return None
    time.sleep(FIRST_LOOK_S)
    last = Reading.now()
    return last, last.others_busy_since(first)


def threads_now(cores: int | None = None) -> int:
    """One per core idle enough now (every usable core where the load cannot be read): for what
    runs several processes of one thread each side by side, as the test suite does."""
    cores = cores or usable_cores()
    looked = look()
    return cores if looked is None else threads_for(cores - looked[1], cores)


@dataclass
class Reading:
    """The machine's busy time, this process's CPU time and the clock, at one moment."""

    busy: float
    own: float
    wall: float

    @classmethod
    def now(cls) -> Reading | None:
        busy = busy_core_seconds()
        return None if busy is None else cls(busy, time.process_time(), time.monotonic())

    def others_busy_since(self, earlier: Reading) -> float:
        """How many cores other programs kept busy, on average, between ``earlier`` and this one."""
        wall = self.wall - earlier.wall
        if wall <= 0:
            return 0.0
        return max(0.0, (self.busy - earlier.busy) - (self.own - earlier.own)) / wall


class CpuThreads:
    """Keeps torch's thread count at the number of idle cores, during one run on a CPU."""

    def __init__(self, *, deterministic: bool = False, cores: int | None = None,
                 notify: Callable[[str], None] = lambda _message: None) -> None:
        self.cores = cores or usable_cores()
        self.notify = notify
        self.fixed = 1 if deterministic and fixed_threads() is None else fixed_threads()
        self.last: Reading | None = None
        self.threads = self.cores

    @contextlib.contextmanager
    def held(self) -> Iterator[int]:
        """``start`` for the length of a run, then torch's count as it was: an in-process caller
        (the form, a test) is left as it found it."""
        import torch

        before = torch.get_num_threads()
        try:
            yield self.start()
        finally:
            torch.set_num_threads(before)

    def start(self) -> int:
        """Choose the count from a short look at the load, set it, and say so when it is less
        than every core; returns it."""
        import torch

        if self.fixed is not None:
            self.threads = self.fixed
            torch.set_num_threads(self.fixed)
            return self.fixed
        looked = look()
        if looked is None:
            self.threads = torch.get_num_threads()
            return self.threads
        self.last, others = looked
        self._use(threads_for(self.cores - others, self.cores))
        if self.threads < self.cores:
            self.notify(
                f"Other programs keep about {others:.1f} of this computer's {self.cores} CPU cores busy: "
                f"training with {self.threads} thread{'s' if self.threads > 1 else ''}, which keeps a "
                f"busy machine from slowing it many times over ({ENV} sets the number)."
            )
        return self.threads

    def follow_load(self) -> None:
        """Between steps: every few seconds, one thread per core other programs left idle since."""
        if self.fixed is not None or self.last is None:
            return
        now = Reading.now()
        if now is None or now.wall - self.last.wall < LOOK_EVERY_S:
            return
        others = now.others_busy_since(self.last)
        self.last = now
        self._use(threads_for(self.cores - others, self.cores))

    def _use(self, threads: int) -> None:
        import torch

        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.threads = threads
