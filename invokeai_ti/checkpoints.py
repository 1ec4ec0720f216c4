"""Resumable checkpoints: small, written atomically, and checked before they are trusted.

A checkpoint holds only what the run needs to continue exactly: the learned vectors (in the model
family's embedding files, one tensor per text encoder), the AdamW
state, the learning-rate schedule and the step. Everything random is derived from the seed and
the sample number, so no random-generator state needs saving. Each checkpoint is written into a
temporary folder and renamed into place; a crash while saving leaves the previous one as newest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from .embeddings import disk_full_message
from .errors import UserError

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class RunShape:
    """What must match for a checkpoint to continue the same run exactly."""

    model: str
    token: str
    num_vectors: int
    # One width per text encoder: (768,) for SD-1, (768, 1280) for SDXL.
    token_dims: tuple[int, ...]
    resolution: int
    train_batch_size: int
    gradient_accumulation_steps: int
    num_processes: int

    def differences(self, other: RunShape) -> list[str]:
        labels = {
            "model": "model",
            "token": "trigger",
            "num_vectors": "number of vectors",
            "token_dims": "token widths",
            "resolution": "resolution",
            "train_batch_size": "batch size",
            "gradient_accumulation_steps": "gradient accumulation steps",
            "num_processes": "number of processes",
        }
        return [
            f"{label} {shown(getattr(self, name))} (checkpoint) vs {shown(getattr(other, name))} (now)"
            for name, label in labels.items()
            if getattr(self, name) != getattr(other, name)
        ]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunShape:
        """Read a shape from ``trainer_state.json``; checkpoints before SDXL recorded one
        ``token_dim``."""
        record = dict(record)
        if "token_dim" in record:
            record["token_dims"] = [record.pop("token_dim")]
        record["token_dims"] = tuple(int(width) for width in record["token_dims"])
        return cls(**record)


def shown(value: Any) -> str:
    return "+".join(map(str, value)) if isinstance(value, tuple) else str(value)


class EmbeddingLayout(Protocol):
    """How a model family writes its embedding files and reads their vectors back."""

    def save_files(self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str) -> None: ...

    def read_saved(self, folder: Path, token: str) -> tuple[torch.Tensor, ...]: ...


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    seed: int
    shape: RunShape


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temporary folders from a crash are not listed)."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def has_checkpoint(output_dir: Path) -> bool:
    return bool(list_checkpoints(output_dir))


def write_checkpoint(
    output_dir: Path,
    *,
    step: int,
    seed: int,
    shape: RunShape,
    family: EmbeddingLayout,
    vectors: Sequence[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    grad_scaler: torch.amp.GradScaler | None,
    keep: int | None,
) -> Path:
    final = output_dir / f"checkpoint-{step}"
    staging = output_dir / f".checkpoint-{step}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        family.save_files(staging, shape.token, vectors, step, shape.model)
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(lr_scheduler.state_dict(), staging / "scheduler.pt")
        if grad_scaler is not None:
            torch.save(grad_scaler.state_dict(), staging / "scaler.pt")
        state = {"step": step, "seed": seed, "shape": asdict(shape)}
        (staging / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if error.errno == 28:
            raise UserError(disk_full_message(final)) from error
        raise
    prune_checkpoints(output_dir, keep)
    return final


def prune_checkpoints(output_dir: Path, keep: int | None) -> None:
    if not keep:
        return
    for _, path in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def find_checkpoint(output_dir: Path, request: str) -> Path | None:
    """``latest`` means the newest complete checkpoint (None when there is none)."""
    if request == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(request).expanduser()
    if not path.is_absolute() and not path.exists():
        path = output_dir / path
    if not (path / STATE_FILE).is_file():
        raise UserError(
            f"{path} is not a checkpoint folder (it has no {STATE_FILE}); pass a checkpoint-N "
            "folder from the output folder, or --resume_from_checkpoint latest."
        )
    return path


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        return Checkpoint(path, int(state["step"]), int(state["seed"]), RunShape.from_record(state["shape"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"The checkpoint {path} is damaged ({type(error).__name__}); delete it and resume from "
            "an earlier one, or start without --resume_from_checkpoint."
        ) from error


def restore_checkpoint(
    checkpoint: Checkpoint,
    *,
    shape: RunShape,
    family: EmbeddingLayout,
    vectors: Sequence[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    grad_scaler: torch.amp.GradScaler | None,
) -> None:
    differences = checkpoint.shape.differences(shape)
    if differences:
        raise UserError(
            f"The checkpoint {checkpoint.path} was made by a different run: "
            + "; ".join(differences)
            + ". Resume with the checkpoint's settings, or start fresh in another output folder."
        )
    with torch.no_grad():
        for target, saved in zip(vectors, family.read_saved(checkpoint.path, shape.token), strict=True):
            target.copy_(saved.to(target.device, target.dtype))
    optimizer.load_state_dict(load_state(checkpoint.path / "optimizer.pt"))
    lr_scheduler.load_state_dict(load_state(checkpoint.path / "scheduler.pt"))
    scaler_file = checkpoint.path / "scaler.pt"
    if grad_scaler is not None and scaler_file.exists():
        grad_scaler.load_state_dict(load_state(scaler_file))


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
