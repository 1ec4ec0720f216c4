"""Start a training on several GPUs from the form, so nobody has to learn ``accelerate launch``.

The form's plan is turned back into ``invokeai-ti`` flags and run through accelerate in child
processes: exactly the command a user would type, so the distributed path is the one the CLI
tests cover.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Sequence

from ..settings import secret_environment, settings_to_argv
from ..workflow import RunPlan


def free_port() -> int:
    """All processes run on this machine, so any free local port will do (29500 may be taken)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(plan: RunPlan, gpus: Sequence[int]) -> tuple[list[str], dict[str, str]]:
    """The command and environment that train ``plan`` on ``gpus``."""
    settings = dataclasses.replace(plan.settings, train_data_dir=plan.data_dir, output_dir=plan.output_dir)
    flags = settings_to_argv(settings)
    env = dict(os.environ) | secret_environment(plan.settings)
    if len(gpus) == 1:
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[0])
        return [sys.executable, "-m", "invokeai_ti", *flags], env
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_machines", "1", "--num_processes", str(len(gpus)),
        "--gpu_ids", ",".join(map(str, gpus)), "--main_process_port", str(free_port()),
        "--mixed_precision", plan.settings.mixed_precision or "no", "--dynamo_backend", "no",
        "-m", "invokeai_ti", *flags,
    ]
    return command, env


def train_on_gpus(plan: RunPlan, gpus: Sequence[int]) -> int:
    command, env = launch_command(plan, gpus)
    return subprocess.call(command, env=env)
