"""The CPU thread count follows the cores other programs leave idle, and only when nobody fixed it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from invokeai_ti import cpu_threads
from invokeai_ti.cpu_threads import CpuThreads, Reading, threads_for, usable_cores


def test_one_thread_per_core_idle_enough_at_least_one_at_most_every_core():
    assert threads_for(2.0, 2) == 2
    assert threads_for(1.85, 2) == 2, "a sliver of load on the second core leaves it usable"
    assert threads_for(1.7, 2) == 1, "a core busy a third of the time stalls every operation"
    assert threads_for(0.0, 2) == 1
    assert threads_for(6.3, 8) == 6


def test_this_process_own_cpu_time_is_not_load():
    earlier = Reading(busy=100.0, own=10.0, wall=50.0)
    assert Reading(busy=103.0, own=12.0, wall=52.0).others_busy_since(earlier) == pytest.approx(0.5)
    assert Reading(busy=102.0, own=12.0, wall=52.0).others_busy_since(earlier) == 0.0


def test_omp_num_threads_fixes_the_count_and_deterministic_runs_use_one(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with CpuThreads(deterministic=True).held() as threads:
        assert threads == 3 == torch.get_num_threads(), "the user's number wins"
    assert torch.get_num_threads() == before, "the count is put back after the run"
    monkeypatch.delenv("OMP_NUM_THREADS")
    with CpuThreads(deterministic=True).held() as threads:
        assert threads == 1 == torch.get_num_threads()


@pytest.mark.skipif(not cpu_threads.PROC_STAT.exists(), reason="no /proc/stat to read the load from")
def test_cores_kept_busy_by_other_programs_are_left_to_them(monkeypatch):
    """As many busy processes as cores: one thread, and one line that says why."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = min(usable_cores(), 4)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    said: list[str] = []
    try:
        time.sleep(0.5)  # until they spin
        with CpuThreads(cores=cores, notify=said.append).held() as threads:
            assert threads == 1 == torch.get_num_threads()
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert len(said) == 1 and said[0].endswith(
        "CPU cores busy: training with 1 thread, which keeps a busy machine from slowing it many "
        "times over (OMP_NUM_THREADS sets the number).")
