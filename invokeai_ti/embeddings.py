"""Reading, writing and installing embedding files.

Every write goes to a temporary file beside the target and is renamed into place, so a crash, a
full disk or Ctrl-C can never leave a half-written embedding where InvokeAI (or the user) would
load it. Installing keeps the previous embedding of the same trigger as a backup, named so that
InvokeAI does not load it as a second embedding.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import UserError

EMBEDDING_NAME = "learned_embeds"
BACKUP_SUFFIX = ".previous"


def disk_full_message(path: Path) -> str:
    return (
        f"The disk holding {path.parent} is full; free some space (or choose another output "
        "folder) and run again: files written earlier are intact."
    )


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    ``os.replace`` is atomic on one filesystem, so readers see the old file or the new one, never
    a torn one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
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


def save_embedding(path: Path, token: str, vectors: torch.Tensor) -> None:
    """Save ``{token: tensor[n, dim]}``, the diffusers format, as .safetensors or torch .bin."""
    tensor = vectors.detach().to("cpu", torch.float32).contiguous().clone()
    if not torch.isfinite(tensor).all():
        raise ValueError("refusing to save an embedding containing NaN or infinity")
    if path.suffix == ".safetensors":
        atomic_write(path, lambda tmp: save_file({token: tensor}, str(tmp)))
    else:
        atomic_write(path, lambda tmp: torch.save({token: tensor}, tmp))


def save_embedding_pair(folder: Path, stem: str, token: str, vectors: torch.Tensor) -> list[Path]:
    """Both formats users expect: ``.safetensors`` for safety, ``.bin`` for InvokeAI 2.3."""
    paths = [folder / f"{stem}.safetensors", folder / f"{stem}.bin"]
    for path in paths:
        save_embedding(path, token, vectors)
    return paths


def load_embedding(path: Path) -> tuple[str | None, torch.Tensor]:
    """Read any embedding format InvokeAI loads; returns (token or None, tensor[n, dim])."""
    try:
        if path.suffix == ".safetensors":
            data: object = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise UserError(f"The embedding file {path} does not exist; check the path.") from error
    except Exception as error:
        raise UserError(
            f"{path} is not a readable embedding file ({type(error).__name__}); pass a .bin, .pt "
            "or .safetensors embedding."
        ) from error
    token, tensor = _unpack(data)
    if tensor is None:
        raise UserError(
            f"{path} holds no embedding InvokeAI understands; expected a diffusers "
            "{'<token>': tensor}, an A1111 .pt or an emb_params file."
        )
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    return token, tensor.to(torch.float32)


def _unpack(data: object) -> tuple[str | None, torch.Tensor | None]:
    if isinstance(data, torch.Tensor):
        return None, data
    if not isinstance(data, dict):
        return None, None
    if "string_to_param" in data:
        params = data["string_to_param"]
        tensor = next(iter(params.values()), None) if isinstance(params, dict) else None
        name = data.get("name")
        return (name if isinstance(name, str) else None), tensor
    if "emb_params" in data:
        return None, data["emb_params"]
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == 1:
        token, tensor = next(iter(tensors.items()))
        return token, tensor
    return None, None


def check_dimension(name: str, vectors: torch.Tensor, token_dim: int) -> None:
    """Refuse an embedding from a model of another width, in InvokeAI's words."""
    if vectors.shape[-1] != token_dim:
        raise UserError(
            f"Cannot load embedding for {name}. It was trained on a model with token dimension "
            f"{vectors.shape[-1]}, but the current model has token dimension {token_dim}."
        )


def install_embedding(embedding_dir: Path, token: str, vectors: torch.Tensor) -> Path:
    """Put a finished embedding where InvokeAI finds it, keeping the one it replaces.

    The new files are complete and valid before anything old is touched; the old ``.bin`` and
    ``.safetensors`` become ``*.previous`` backups.
    """
    staging = embedding_dir / ".incoming"
    shutil.rmtree(staging, ignore_errors=True)
    save_embedding_pair(staging, EMBEDDING_NAME, token, vectors)
    try:
        for suffix in (".safetensors", ".bin"):
            final = embedding_dir / f"{EMBEDDING_NAME}{suffix}"
            if final.exists():
                os.replace(final, final.with_name(final.name + BACKUP_SUFFIX))
            os.replace(staging / final.name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return embedding_dir / f"{EMBEDDING_NAME}.bin"
