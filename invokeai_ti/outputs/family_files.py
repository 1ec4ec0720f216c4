"""Each model family's embedding files: what one save writes, and how it is read back and installed.

A family's maths (its text encoders, how they condition the UNet) is ``training.family``; what
its vectors become on disk is here, beside the formats themselves, so the trainer's maths and the
files it leaves can change apart. ``training.family.ModelFamily.files`` is the link: the data
flows from training down to these writers, never the other way. The front ends ask ``files_for``
for a model's files (checking a trigger, reading ``--initial_embedding``, installing, the output
folder's names) without reaching into ``training``.

Vectors are always handed around as one tensor per text encoder, in the family's encoder order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import Problem
from ..models import BASE_SDXL, ModelInfo
from ..settings.trigger import bare_trigger
from .embeddings import Embedding, install_embedding, save_embedding_files
from .layout import OutputLayout
from .sdxl_files import SDXLVectors, read_initial_vectors, save_sdxl_embeddings, sdxl_trigger_problem

# Room for a file's header and metadata beside its tensors.
FILE_OVERHEAD_BYTES = 4096


class FamilyFiles:
    """What every family's files share; ``encoders`` is how many text encoders it has."""

    encoders: int

    def save_bytes(self, num_vectors: int, widths: Sequence[int]) -> int:
        """At most what one save writes: each of its files holds at most every vector (float32)."""
        files = len(self.output_layout(Path(), "<t>").embeddings().all())
        return files * (num_vectors * sum(widths) * 4 + FILE_OVERHEAD_BYTES)

    def output_layout(self, folder: Path, token: str) -> OutputLayout:
        """The names of what a run of this family writes into ``folder``."""
        return OutputLayout(folder, bare_trigger(token), self.encoders)

    def trigger_problem(self, token: str) -> Problem | None:
        """A trigger this family's files cannot be saved under."""
        return None

    def save_files(
        self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str,
        *, snapshot: bool = False,
    ) -> None:
        """Every layout of the embedding into ``folder``; ``snapshot`` names them after ``step``."""
        raise NotImplementedError

    def read_saved(self, folder: Path, token: str) -> tuple[torch.Tensor, ...]:
        """The vectors ``save_files`` wrote into ``folder`` (final names), one per encoder.

        Read from the diffusers files, ``{token: tensor[n, width]}``, one per encoder.
        """
        files = self.output_layout(folder, token).embeddings().diffusers
        return tuple(load_file(str(path))[token] for path in files)

    def install(self, output_dir: Path, embedding_dir: Path, token: str) -> Path:
        """Put the trained embedding where InvokeAI finds it; returns the installed file.

        Every family's output folder holds the InvokeAI file as ``learned_embeds.bin`` (SD's 1-D
        or A1111 layout, SDXL's ``clip_l``/``clip_g``); it is installed as its folder's only file.
        """
        return install_embedding(output_dir, embedding_dir)

    def read_initial(self, path: Path, widths: Sequence[int], model: str) -> tuple[torch.Tensor, ...]:
        """``--initial_embedding``'s vectors, one per encoder; a file for other widths is refused."""
        return read_initial_vectors(path, widths, model)


class StableDiffusionFiles(FamilyFiles):
    """SD-1 and SD-2: the InvokeAI, diffusers and single-file layouts of one tensor."""

    encoders = 1

    def save_files(
        self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str,
        *, snapshot: bool = False,
    ) -> None:
        save_embedding_files(folder, Embedding(token, vectors[0], step, model), snapshot=snapshot)


class StableDiffusionXLFiles(FamilyFiles):
    """SDXL: ``clip_l`` and ``clip_g`` together, and the diffusers example's pair of files."""

    encoders = 2

    def trigger_problem(self, token: str) -> Problem | None:
        return sdxl_trigger_problem(token)

    def save_files(
        self, folder: Path, token: str, vectors: Sequence[torch.Tensor], step: int, model: str,
        *, snapshot: bool = False,
    ) -> None:
        save_sdxl_embeddings(folder, token, SDXLVectors(*vectors), step=step if snapshot else None)


def files_for(model: ModelInfo) -> FamilyFiles:
    """The files a model of this base is trained into."""
    return StableDiffusionXLFiles() if model.base == BASE_SDXL else StableDiffusionFiles()
