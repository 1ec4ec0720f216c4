"""Reading, writing and installing embedding files.

Each tool reads embedding files by its own rules (REFERENCE.md, "Embedding files: who loads
what"), and no single layout suits them all, so every save writes three files:

* ``learned_embeds.bin``, the one installed for InvokeAI. InvokeAI 2.3 reads a plain
  ``{token: tensor}`` as one 1-D vector and InvokeAI 3.x+ takes the token width from that tensor's
  first dimension, so a ``[n, dim]`` value there is misread by both. One vector is therefore saved
  1-D, several in AUTOMATIC1111's layout (``string_to_param`` and friends), which every InvokeAI
  and diffusers read with the right trigger, count and width.
* ``learned_embeds.safetensors``: the diffusers example's ``{token: tensor[n, dim]}``.
* ``<trigger>.safetensors``: ``{"emb_params": tensor[n, dim]}``, for AUTOMATIC1111, ComfyUI, kohya
  and InvokeAI's single-file import, which all take the trigger from the file name.

Every write goes to a temporary file beside the target and is renamed into place, so a crash, a
full disk or Ctrl-C can never leave a half-written embedding where a tool (or the user) would load
it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError

EMBEDDING_NAME = "learned_embeds"
INSTALLED_NAME = f"{EMBEDDING_NAME}.bin"
BACKUP_SUFFIX = ".previous"
# The token id AUTOMATIC1111 records for its "*" placeholder; InvokeAI 2.3 requires the key.
A1111_PLACEHOLDER_ID = 265
# What earlier versions of this trainer installed beside learned_embeds.bin. InvokeAI 2.3 loads
# every file in the embeddings folder, so each of these registered the trigger a second time or
# printed a notice at every start.
LEGACY_INSTALLED_NAMES = (
    f"{EMBEDDING_NAME}.safetensors",
    f"{EMBEDDING_NAME}.safetensors{BACKUP_SUFFIX}",
    f"{INSTALLED_NAME}{BACKUP_SUFFIX}",
)
OWN_FILE_NAMES = re.compile(rf"{EMBEDDING_NAME}(-steps-\d+)?", re.IGNORECASE)


def disk_full_message(path: Path) -> str:
    return (
        f"The disk holding {path.parent} is full; free some space (or choose another output "
        "folder) and run again: files written earlier are intact."
    )


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    ``os.replace`` is atomic on one filesystem, so readers see the old file or the new one, never
    a torn one. The temporary file is created here first so that it gets the permissions the
    user's umask gives any new file, and that mode is put back after ``write``: some writers
    (safetensors) replace the file with a private one, which InvokeAI running as another user,
    or a shared model folder, could not read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        write(tmp)
        os.chmod(tmp, mode)
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


@dataclass(frozen=True)
class Embedding:
    """Learned vectors, with what AUTOMATIC1111-style files record about their training."""

    token: str
    vectors: torch.Tensor
    step: int
    model: str

    def __post_init__(self) -> None:
        tensor = self.vectors.detach().to("cpu", torch.float32).contiguous().clone()
        if tensor.dim() != 2:
            raise ValueError(f"an embedding is tensor[n, dim], not {tuple(tensor.shape)}")
        if not torch.isfinite(tensor).all():
            raise ValueError("refusing to save an embedding containing NaN or infinity")
        object.__setattr__(self, "vectors", tensor)

    @property
    def trigger(self) -> str:
        """The bare word, as tools that name the trigger after the file see it."""
        return self.token.removeprefix("<").removesuffix(">")


def invokeai_layout(embedding: Embedding) -> dict[str, object]:
    """The one layout every InvokeAI since 2.3 and diffusers read with the right trigger and width."""
    vectors = embedding.vectors
    if vectors.shape[0] == 1:
        return {embedding.token: vectors[0].clone()}
    return {
        "string_to_token": {"*": A1111_PLACEHOLDER_ID},
        "string_to_param": {"*": vectors},
        "name": embedding.token,
        "step": embedding.step,
        "sd_checkpoint": None,
        "sd_checkpoint_name": embedding.model,
    }


@dataclass(frozen=True)
class EmbeddingFiles:
    """The files one save writes: see the module docstring for which tool reads which."""

    invokeai: Path
    diffusers: Path
    single_file: Path

    def all(self) -> tuple[Path, Path, Path]:
        return self.invokeai, self.diffusers, self.single_file


def embedding_files(folder: Path, trigger: str, step: int | None = None) -> EmbeddingFiles:
    """The final files, or with ``step`` the ``-steps-N`` snapshot written along the way."""
    suffix = "" if step is None else f"-steps-{step}"
    return EmbeddingFiles(
        invokeai=folder / f"{EMBEDDING_NAME}{suffix}.bin",
        diffusers=folder / f"{EMBEDDING_NAME}{suffix}.safetensors",
        single_file=folder / f"{trigger}{suffix}.safetensors",
    )


def save_embedding_files(folder: Path, embedding: Embedding, *, snapshot: bool = False) -> EmbeddingFiles:
    """Write every layout of ``embedding`` into ``folder``; ``snapshot`` names them after its step."""
    files = embedding_files(folder, embedding.trigger, embedding.step if snapshot else None)
    atomic_write(files.invokeai, lambda tmp: torch.save(invokeai_layout(embedding), tmp))
    atomic_write(files.diffusers, lambda tmp: save_file({embedding.token: embedding.vectors}, str(tmp)))
    atomic_write(files.single_file, lambda tmp: save_file({"emb_params": embedding.vectors}, str(tmp)))
    return files


def snapshot_files(folder: Path, trigger: str) -> list[Path]:
    """The ``-steps-N`` snapshots in ``folder``, the final files never among them."""
    pattern = re.compile(
        rf"{EMBEDDING_NAME}-steps-\d+\.(bin|safetensors)|{re.escape(trigger)}-steps-\d+\.safetensors"
    )
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if pattern.fullmatch(path.name))


def clashes_with_own_files(trigger: str) -> bool:
    """A trigger named like the trainer's own files would overwrite them as ``<trigger>.safetensors``.

    Case is ignored because macOS and Windows file systems ignore it.
    """
    return OWN_FILE_NAMES.fullmatch(trigger) is not None


def load_embedding(path: Path) -> tuple[str | None, torch.Tensor]:
    """Read any embedding format InvokeAI loads; returns (token or None, tensor[n, dim]).

    ``weights_only`` because the file may come from anyone: loading it must never run code.
    """
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


def install_embedding(output_dir: Path, embedding_dir: Path, step: int | None = None) -> Path:
    """Copy the trained ``learned_embeds.bin`` where InvokeAI finds it, as that folder's only file.

    With ``step``, the snapshot ``learned_embeds-steps-N.bin`` is installed the same way: a user
    who liked an earlier preview better gets exactly what the final embedding would have got.
    InvokeAI 2.3 walks ``<root>/embeddings/`` and loads every file in it whatever its name (an
    unknown suffix is read as safetensors), so no backup may stay there: the embedding this one
    replaces is kept in the output folder as ``learned_embeds.bin.previous``, written before the
    installed file is touched. Files earlier versions installed beside it are removed.
    """
    trained = output_dir / (INSTALLED_NAME if step is None else f"{EMBEDDING_NAME}-steps-{step}.bin")
    installed = embedding_dir / INSTALLED_NAME
    if installed.is_file():
        backup = output_dir / f"{INSTALLED_NAME}{BACKUP_SUFFIX}"
        atomic_write(backup, lambda tmp: shutil.copyfile(installed, tmp))
    atomic_write(installed, lambda tmp: shutil.copyfile(trained, tmp))
    for name in LEGACY_INSTALLED_NAMES:
        (embedding_dir / name).unlink(missing_ok=True)
    shutil.rmtree(embedding_dir / ".incoming", ignore_errors=True)
    return installed


def snapshot_steps(output_dir: Path) -> list[int]:
    """The steps whose ``learned_embeds-steps-N.bin`` is in the output folder, oldest first."""
    pattern = re.compile(rf"{EMBEDDING_NAME}-steps-(\d+)\.bin")
    if not output_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for p in output_dir.iterdir() if (m := pattern.fullmatch(p.name)))
