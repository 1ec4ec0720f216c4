"""SDXL embedding files: one set that every SDXL tool loads, and a reader for what they write.

An SDXL embedding is two tensors with the same number of vectors, one per text encoder:
``clip_l`` in the first (CLIP ViT-L, 768 wide) and ``clip_g`` in the second (OpenCLIP bigG,
1280 wide). The tools disagree on files, so an output folder gets every layout users meet:

- ``learned_embeds.bin`` ``{"clip_l", "clip_g"}``: what InvokeAI 3.x+ reads from a folder, and the
  file installed into ``embeddings/<trigger>/``.
- ``<trigger>.safetensors`` with the same two keys: AUTOMATIC1111, ComfyUI, kohya and InvokeAI's
  single-file import, all of which take the trigger from the file name.
- ``learned_embeds.safetensors`` / ``learned_embeds_2.safetensors`` ``{token: tensor}``, first and
  second encoder: the diffusers SDXL example's pair, one ``load_textual_inversion`` call each.

Widths are never assumed: they are whatever the model's encoders have (the tiny test model's are
32 and 48), so a file can only be as wrong as the vectors handed in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import Problem, UserError
from ..files import atomic_write
from ..models import BASE_BY_TOKEN_WIDTH
from ..settings.trigger import bare_trigger
from .embeddings import check_dimension, load_embedding
from .layout import EMBEDDING_NAME, SECOND_ENCODER_SUFFIX, OutputLayout

CLIP_L, CLIP_G = "clip_l", "clip_g"
# ``learned_embeds.safetensors``, ``learned_embeds_2-steps-500.safetensors``, ...: the diffusers
# SDXL example's names, in which ``_2`` marks the second encoder's half of the pair.
DIFFUSERS_PAIR_NAME = re.compile(
    rf"^(?P<stem>.+?)(?P<second>{SECOND_ENCODER_SUFFIX})?(?P<steps>-steps-\d+)?\.safetensors$"
)
PAIR_HINT = (
    "a file with clip_l and clip_g, or learned_embeds.safetensors with learned_embeds_2.safetensors "
    "beside it"
)


@dataclass(frozen=True)
class SDXLVectors:
    """The same ``n`` learned vectors as each SDXL text encoder sees them."""

    clip_l: torch.Tensor
    clip_g: torch.Tensor

    def __post_init__(self) -> None:
        if self.clip_l.dim() != 2 or self.clip_g.dim() != 2:
            raise ValueError("clip_l and clip_g must each be a [vectors, width] tensor")
        if self.clip_l.shape[0] != self.clip_g.shape[0]:
            raise ValueError(
                f"clip_l has {self.clip_l.shape[0]} vectors but clip_g has {self.clip_g.shape[0]}"
            )

    @property
    def widths(self) -> tuple[int, int]:
        return self.clip_l.shape[1], self.clip_g.shape[1]


@dataclass(frozen=True)
class SDXLFiles:
    """Where each layout of one SDXL embedding goes in a folder."""

    invokeai: Path
    single_file: Path
    diffusers_first: Path
    diffusers_second: Path

    def paths(self) -> tuple[Path, ...]:
        return self.invokeai, self.single_file, self.diffusers_first, self.diffusers_second


def sdxl_files(folder: Path, token: str, step: int | None = None) -> SDXLFiles:
    """The set's paths; ``step`` gives the ``-steps-N`` snapshot names the diffusers example uses."""
    names = OutputLayout(folder, bare_trigger(token), encoders=2).embeddings(step)
    first, second = names.diffusers
    return SDXLFiles(
        invokeai=names.invokeai, single_file=names.single_file, diffusers_first=first, diffusers_second=second
    )


def sdxl_trigger_problem(token: str) -> Problem | None:
    """A trigger whose single file would overwrite one of the diffusers pair."""
    trigger = bare_trigger(token)
    if trigger in (EMBEDDING_NAME, EMBEDDING_NAME + SECOND_ENCODER_SUFFIX):
        return Problem(
            f"the trigger term '{trigger}' is the name of one of the files an SDXL embedding is saved "
            "in; choose another trigger term",
            "placeholder_token",
        )
    return None


def save_sdxl_embeddings(
    folder: Path, token: str, vectors: SDXLVectors, *, step: int | None = None
) -> SDXLFiles:
    """Write the whole set for ``token`` into ``folder``, each file atomically.

    NaN or infinity is refused before anything is written, so a diverged run never replaces a
    good set with a broken one.
    """
    if (problem := sdxl_trigger_problem(token)) is not None:
        raise ValueError(problem.sentence)
    clip_l, clip_g = _storable(vectors.clip_l), _storable(vectors.clip_g)
    files = sdxl_files(folder, token, step)
    both = {CLIP_L: clip_l, CLIP_G: clip_g}
    _save_safetensors(files.diffusers_first, {token: clip_l})
    _save_safetensors(files.diffusers_second, {token: clip_g})
    _save_safetensors(files.single_file, both)
    atomic_write(files.invokeai, lambda tmp: torch.save(both, tmp))
    return files


def read_initial_vectors(
    path: Path, token_dims: Sequence[int], model_name: str
) -> tuple[torch.Tensor, ...]:
    """The vectors of an embedding file for a model whose text encoders are ``token_dims`` wide.

    Returns one ``[n, width]`` tensor per text encoder, in the model's order (clip_l, clip_g for
    SDXL). SDXL files are recognised by their ``clip_l``/``clip_g`` keys or as half of a diffusers
    pair whose partner lies beside them; everything else is read as a one-encoder (SD-1/SD-2) file.
    A file for the other kind of model, or for other widths, is refused in one sentence.
    """
    path = Path(path)
    found = _read_sdxl(path)
    vectors: tuple[torch.Tensor, ...] = found if found is not None else (load_embedding(path)[1],)
    file_dims = tuple(tensor.shape[-1] for tensor in vectors)
    if len(vectors) == 1 and len(token_dims) == 1:
        check_dimension(path.name, vectors[0], token_dims[0])
    elif file_dims != tuple(token_dims):
        fix = "pass one trained on a model like it"
        if len(token_dims) == 2:
            fix = f"pass an SDXL embedding ({PAIR_HINT})"
        raise UserError(
            f"The embedding {path.name} was trained on {_describe(file_dims)}, but {model_name} is "
            f"{_describe(tuple(token_dims))}; {fix}, or leave out --initial_embedding."
        )
    return tuple(tensor.to(torch.float32) for tensor in vectors)


def _read_sdxl(path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(clip_l, clip_g)`` when ``path`` is an SDXL embedding; None for anything else."""
    tensors = _tensors(path)
    if tensors is None:
        return None
    if CLIP_L in tensors and CLIP_G in tensors:
        pair = tensors[CLIP_L], tensors[CLIP_G]
    elif len(tensors) == 1 and (partner := _pair_partner(path)) is not None:
        own, other = next(iter(tensors.values())), load_embedding(partner)[1]
        pair = (other, own) if _is_second_half(path) else (own, other)
    else:
        return None
    clip_l, clip_g = (tensor.unsqueeze(0) if tensor.dim() == 1 else tensor for tensor in pair)
    if clip_l.shape[0] != clip_g.shape[0]:
        raise UserError(
            f"The embedding {path.name} holds {clip_l.shape[0]} vectors for the first text encoder but "
            f"{clip_g.shape[0]} for the second; an SDXL embedding has the same number for both."
        )
    return clip_l, clip_g


def _pair_partner(path: Path) -> Path | None:
    """The other half of a diffusers SDXL pair, when ``path`` is named as one and it exists."""
    match = DIFFUSERS_PAIR_NAME.match(path.name)
    if match is None:
        return None
    second = "" if match["second"] else SECOND_ENCODER_SUFFIX
    partner = path.with_name(f"{match['stem']}{second}{match['steps'] or ''}.safetensors")
    return partner if partner.is_file() else None


def _is_second_half(path: Path) -> bool:
    match = DIFFUSERS_PAIR_NAME.match(path.name)
    return match is not None and match["second"] is not None


def _tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """The file's top-level tensors, or None when it is not a flat mapping of tensors.

    Unreadable files are None too: ``load_embedding`` reads them next and says what is wrong.
    """
    try:
        if path.suffix == ".safetensors":
            data: object = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(data, dict):
        return None
    return {key: value for key, value in data.items() if isinstance(value, torch.Tensor)}


def _describe(widths: tuple[int, ...]) -> str:
    if len(widths) == 2:
        return f"an SDXL model (token widths {widths[0]} and {widths[1]})"
    if len(widths) == 1 and (base := BASE_BY_TOKEN_WIDTH.get(widths[0])) is not None:
        return f"an {base} model (token width {widths[0]})"
    return f"a model with one text encoder (token width {widths[0]})"


def _storable(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 CPU copy that owns its memory, as safetensors requires."""
    tensor = tensor.detach().to("cpu", torch.float32).contiguous().clone()
    if not torch.isfinite(tensor).all():
        raise ValueError("refusing to save an embedding containing NaN or infinity")
    return tensor


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
