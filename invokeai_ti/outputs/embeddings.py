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

Every write goes through ``files.atomic_write``, so a crash, a full disk or Ctrl-C can never leave
a half-written embedding where a tool (or the user) would load it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..files import atomic_write, clear_temporaries
from .layout import INSTALLED_BACKUP, INSTALLED_NAME, LEGACY_INSTALLED_NAMES, OutputLayout, invokeai_name

# The token id AUTOMATIC1111 records for its "*" placeholder; InvokeAI 2.3 requires the key.
A1111_PLACEHOLDER_ID = 265


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
    names = OutputLayout(folder, trigger).embeddings(step)
    return EmbeddingFiles(invokeai=names.invokeai, diffusers=names.diffusers[0], single_file=names.single_file)


def save_embedding_files(folder: Path, embedding: Embedding, *, snapshot: bool = False) -> EmbeddingFiles:
    """Write every layout of ``embedding`` into ``folder``; ``snapshot`` names them after its step."""
    files = embedding_files(folder, embedding.trigger, embedding.step if snapshot else None)
    atomic_write(files.invokeai, lambda tmp: torch.save(invokeai_layout(embedding), tmp))
    atomic_write(files.diffusers, lambda tmp: save_file({embedding.token: embedding.vectors}, str(tmp)))
    atomic_write(files.single_file, lambda tmp: save_file({"emb_params": embedding.vectors}, str(tmp)))
    return files


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

    For the same reason the copy is written beside the embeddings folder (in the folder holding
    it, on the same disk, where no consumer loads anything) and renamed into place whole: a run
    killed while copying leaves a hidden temporary file there, never a half-written file that
    InvokeAI would load, and the next install clears it (and any an older version left inside).
    """
    trained = output_dir / invokeai_name(step)
    installed = embedding_dir / INSTALLED_NAME
    embedding_dir.mkdir(parents=True, exist_ok=True)
    staging = embedding_dir.resolve().parent.parent
    clear_temporaries(embedding_dir)
    clear_temporaries(staging, installed.name)
    if installed.is_file():
        backup = output_dir / INSTALLED_BACKUP
        atomic_write(backup, lambda tmp: shutil.copyfile(installed, tmp))
    atomic_write(installed, lambda tmp: shutil.copyfile(trained, tmp), staging=staging)
    for name in LEGACY_INSTALLED_NAMES:
        (embedding_dir / name).unlink(missing_ok=True)
    shutil.rmtree(embedding_dir / ".incoming", ignore_errors=True)
    return installed

