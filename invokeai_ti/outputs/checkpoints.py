"""Resumable checkpoints: small, written atomically, and checked before they are trusted.

A checkpoint holds only what the run needs to continue exactly: the learned vectors (in the model
family's embedding files, one tensor per text encoder), the AdamW state, the learning-rate
schedule, the step, and the settings that define the run (``run_shape.RunShape``) so that a resume with
other ones is refused instead of silently becoming another run.
Everything random is derived from the seed and the sample number, so no random-generator state
needs saving. Each checkpoint is written into a temporary folder and renamed into place; a crash
while saving leaves the previous one as newest.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import UserError
from ..files import DamagedFile, read_json_object, writing
from .layout import (
    CHECKPOINT_PATTERN,
    CHECKPOINT_STATE,
    OPTIMIZER_STATE,
    SCALER_STATE,
    SCHEDULER_STATE,
    checkpoint_name,
    checkpoint_staging_name,
)
from .run_shape import RunShape


class EmbeddingLayout(Protocol):
    """How a model family writes its embedding files and reads their vectors back
    (``outputs.family_files``)."""

    def save_files(self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str) -> None: ...

    def read_saved(self, folder: Path, token: str) -> tuple[torch.Tensor, ...]: ...

    def save_bytes(self, num_vectors: int, widths: Sequence[int]) -> int: ...


class Stateful(Protocol):
    """The run's progress (``training.state.TrainingState``): the vectors under ``"vectors"``, one
    tensor per text encoder, and the optimizer, schedule and loss scale as their state dicts."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    seed: int
    shape: RunShape
    # The length of the schedule the checkpoint was made under; None in older checkpoints.
    total_steps: int | None = None
    # ``TrainingData.record()`` of the data the run trained on; None in older checkpoints.
    data: dict[str, Any] | None = None
    # The fixed evaluation batch's (step, score) so far; empty in older checkpoints.
    evaluation: tuple[tuple[int, float], ...] = ()


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temporary folders from a crash are not listed)."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and (child / CHECKPOINT_STATE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def write_checkpoint(
    output_dir: Path,
    *,
    step: int,
    seed: int,
    shape: RunShape,
    total_steps: int,
    files: EmbeddingLayout,
    state: Stateful,
    keep: int | None,
    data: dict[str, Any] | None = None,
    evaluation: Sequence[tuple[int, float]] | None = None,
) -> Path:
    final = output_dir / checkpoint_name(step)
    staging = output_dir / checkpoint_staging_name(step)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with writing(final):
            _write_staged(staging, final, step=step, seed=seed, shape=shape, total_steps=total_steps, files=files,
                          state=state, data=data, evaluation=evaluation)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune_checkpoints(output_dir, keep)
    return final


def _write_staged(
    staging: Path, final: Path, *, step: int, seed: int, shape: RunShape, total_steps: int, files: EmbeddingLayout,
    state: Stateful, data: dict[str, Any] | None, evaluation: Sequence[tuple[int, float]] | None,
) -> None:
    """Every file of the checkpoint into ``staging``, then the folder renamed to ``final`` whole."""
    staging.mkdir(parents=True)
    saved = state.state_dict()
    files.save_files(staging, shape.token, saved["vectors"], step, shape.model)
    torch.save(saved["optimizer"], staging / OPTIMIZER_STATE)
    torch.save(saved["lr_scheduler"], staging / SCHEDULER_STATE)
    if saved["grad_scaler"] is not None:
        torch.save(saved["grad_scaler"], staging / SCALER_STATE)
    record = {
        "step": step, "seed": seed, "total_steps": total_steps, "shape": asdict(shape), "data": data,
        "evaluation": [list(point) for point in evaluation or ()],
    }
    (staging / CHECKPOINT_STATE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def prune_checkpoints(output_dir: Path, keep: int | None) -> None:
    """Keep the newest ``keep`` by step, as the diffusers example does (0 or None keeps all)."""
    if not keep:
        return
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


# A checkpoint's small files beside the embedding and the optimizer's moments: trainer_state.json,
# the schedule's and the loss scaler's state.
STATE_FILES_BYTES = 65536


def checkpoint_bytes(files: EmbeddingLayout, num_vectors: int, widths: Sequence[int]) -> int:
    """What one checkpoint takes on disk: the family's embedding files, AdamW's two moments of
    every vector (float32) and the small state files."""
    moments = 2 * num_vectors * sum(widths) * 4
    return files.save_bytes(num_vectors, widths) + moments + STATE_FILES_BYTES


def checkpoints_on_disk(steps: int, every: int, keep: int | None) -> int:
    """How many checkpoints a run of ``steps`` holds at its fullest.

    One at every multiple of ``every`` and one at the end; a new one is complete before the
    oldest is pruned, so ``keep + 1`` exist for a moment.
    """
    written = math.ceil(steps / every)
    return min(written, keep + 1) if keep else written


def find_checkpoint(output_dir: Path, request: str) -> Path | None:
    """``latest`` means the newest complete checkpoint (None when there is none)."""
    if request == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(request).expanduser()
    if not path.is_absolute() and not path.exists():
        path = output_dir / path
    if not (path / CHECKPOINT_STATE).is_file():
        raise UserError(
            f"{path} is not a checkpoint folder (it has no {CHECKPOINT_STATE}); pass a checkpoint-N "
            "folder from the output folder, or --resume_from_checkpoint latest."
        )
    return path


def checkpoint_to_resume(output_dir: Path, request: str | None) -> Checkpoint | None:
    """The checkpoint a run with ``--resume_from_checkpoint request`` continues, read.

    The form asks this too, so what it shows is what the trainer will do.
    """
    if not request:
        return None
    found = find_checkpoint(output_dir, request)
    return None if found is None else read_checkpoint(found)


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        state = read_json_object(path / CHECKPOINT_STATE)
        total = state.get("total_steps")
        return Checkpoint(
            path,
            int(state["step"]),
            int(state["seed"]),
            RunShape.from_record(state["shape"]),
            None if total is None else int(total),
            state.get("data"),
            tuple((int(step), float(score)) for step, score in state.get("evaluation") or ()),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        reason = str(error) if isinstance(error, DamagedFile) else f"{CHECKPOINT_STATE}: {type(error).__name__}"
        raise UserError(
            f"The checkpoint {path} is damaged ({reason}); delete it and resume from "
            "an earlier one, or start without --resume_from_checkpoint."
        ) from error


def restore_checkpoint(checkpoint: Checkpoint, *, shape: RunShape, files: EmbeddingLayout, state: Stateful) -> None:
    scaler_file = checkpoint.path / SCALER_STATE
    state.load_state_dict({
        "vectors": saved_vectors(checkpoint.path, shape.token, files, state),
        "optimizer": load_state(checkpoint.path / OPTIMIZER_STATE),
        "lr_scheduler": load_state(checkpoint.path / SCHEDULER_STATE),
        "grad_scaler": load_state(scaler_file) if scaler_file.exists() else None,
    })


def saved_vectors(folder: Path, token: str, files: EmbeddingLayout, state: Stateful) -> tuple[torch.Tensor, ...]:
    """The checkpoint's vectors, refused in one sentence unless they are the trigger's, of the
    shapes this run trains: a file someone replaced or damaged, not a traceback from the copy."""
    wanted = [tuple(vectors.shape) for vectors in state.state_dict()["vectors"]]
    damaged = f"The checkpoint {folder} is damaged"
    fix = "delete it and resume from an earlier one, or start without --resume_from_checkpoint"
    try:
        found = files.read_saved(folder, token)
    except KeyError as error:
        raise UserError(f"{damaged}: its embedding files do not hold {token}; {fix}.") from error
    except Exception as error:
        raise UserError(f"{damaged}: its embedding files cannot be read ({type(error).__name__}); {fix}.") from error
    shapes = [tuple(vectors.shape) for vectors in found]
    if shapes != wanted:
        shown = " and ".join("x".join(map(str, shape)) for shape in shapes)
        raise UserError(f"{damaged}: its embedding holds vectors of {shown} where this run trains "
                        f"{' and '.join('x'.join(map(str, shape)) for shape in wanted)}; {fix}.")
    return found


def load_state(path: Path) -> dict[str, Any]:
    """Read a state file without ever running code from it, onto the CPU.

    A checkpoint folder can be named on the command line, so it may come from anyone; and one
    written on a GPU must resume on a machine without one (``load_state_dict`` moves the state
    to where the parameters are).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(
            f"{path} is damaged or holds more than saved training state ({type(error).__name__}); "
            "resume from another checkpoint, or start without --resume_from_checkpoint."
        ) from error
