"""Loading a model for training, one part at a time and straight in its precision, and what a
run holds once it is loaded.

``PartLoader`` reads one part of a diffusers pipeline; every load failure becomes one sentence
naming the part and the folder (a half-downloaded model is the usual cause, and a traceback from
deep inside transformers does not say so). ``ModelLoader`` is a model family's loader: it loads
the text encoders with the trigger's tokens added (``TextEncoders``), and later, once the latents
are cached and the VAE freed, the UNet beside them (``LoadedModel``), from which the training
step and the previews are built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..hub import hub_unreachable
from ..models import FORMAT_CHECKPOINT, ModelInfo
from ..quiet import quiet_imports, quiet_library_progress
from ..settings import TrainingSettings
from ..single_file import CheckpointFile, weightless_folder
from .family import ModelFamily
from .tokens import add_tokens, new_tokens

# What a tokenizer is made of; --tokenizer_name downloads these, never a repository's weights.
TOKENIZER_FILES = ["*.json", "*.txt", "*.model"]
PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# Reads the vectors a run starts from, given the text encoders' widths; None: the initializer's.
InitialVectors = Callable[[tuple[int, ...]], "tuple[torch.Tensor, ...] | None"]


class PartLoader:
    """Loads the parts of ``model`` from its folder, which ``find_model`` resolved at the
    settings' revision (a local folder has no other revision to ask ``from_pretrained`` for).

    A single-file checkpoint's weights come from the file (``checkpoint``); its configs,
    tokenizers and scheduler from its weightless folder, which is then ``location``.
    """

    def __init__(self, model: ModelInfo, tokenizer_name: str | None) -> None:
        self.model = model
        self.checkpoint: CheckpointFile | None = None
        if model.format == FORMAT_CHECKPOINT and model.path is not None and model.config is not None:
            self.checkpoint = CheckpointFile(model.path, weightless_folder(model.config))
            self.location = str(self.checkpoint.config)
        else:
            self.location = str(model.path or model.location)
        self.tokenizer_name = tokenizer_name

    @property
    def source(self) -> str:
        """Where the weights come from, as a run announces it."""
        if self.checkpoint is not None:
            return f"{self.checkpoint.path}, with the configs in {self.model.config}"
        return self.location

    def tokenizer(self, subfolder: str):
        with quiet_imports():
            from transformers import CLIPTokenizer

        if self.tokenizer_name and subfolder == "tokenizer":
            return self.named_tokenizer(CLIPTokenizer, self.tokenizer_name)
        with self.errors("tokenizer"), quiet_library_progress():
            return CLIPTokenizer.from_pretrained(self.location, subfolder=subfolder)

    def named_tokenizer(self, kind: Any, name: str):
        """``--tokenizer_name``: a folder, a hub id in the local cache, or else a download (with
        huggingface_hub's progress), asked for only after the hub has answered: where it cannot
        be reached, huggingface_hub retries every file for minutes."""
        with quiet_imports():
            from huggingface_hub import snapshot_download

        with self.errors("tokenizer", f"{name} (--tokenizer_name)"):
            folder = Path(name).expanduser()
            if not folder.exists():
                try:
                    folder = Path(snapshot_download(name, local_files_only=True))
                except Exception:
                    if (why := hub_unreachable()) is not None:
                        raise UserError(
                            f"The tokenizer {name} (--tokenizer_name) is neither a folder nor in the local "
                            f"Hugging Face cache, and {why}; pass a tokenizer folder, or download it with "
                            f"`hf download {name}` where the hub can be reached."
                        ) from None
                    folder = Path(snapshot_download(name, allow_patterns=TOKENIZER_FILES))
            with quiet_library_progress():
                return kind.from_pretrained(str(folder))

    def text_encoder(self, subfolder: str, kind: str = "CLIPTextModel"):
        with quiet_imports():
            import transformers

        with self.errors("text encoder"), quiet_library_progress():
            if self.checkpoint is not None:
                return self.checkpoint.text_encoder(getattr(transformers, kind), subfolder)
            return getattr(transformers, kind).from_pretrained(self.location, subfolder=subfolder)

    def config(self, part: str) -> dict:
        """A part's ``config.json``, read before its weights to choose how to load them."""
        with quiet_imports():
            from diffusers import AutoencoderKL, UNet2DConditionModel

        kind = {"vae": AutoencoderKL, "unet": UNet2DConditionModel}[part]
        with self.errors(part), quiet_library_progress():
            return dict(kind.load_config(self.location, subfolder=part))

    def part(self, part: str, dtype: torch.dtype | None):
        """A frozen VAE or UNet in ``dtype``, or the noise scheduler (``dtype`` None)."""
        with quiet_imports():
            from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

        kind = {"vae": AutoencoderKL, "unet": UNet2DConditionModel, "scheduler": DDPMScheduler}[part]
        with self.errors(part), quiet_library_progress():
            if dtype is None:
                return kind.from_pretrained(self.location, subfolder=part)
            if self.checkpoint is not None:
                loaded = self.checkpoint.model_part(kind, part, dtype)
            else:
                loaded = kind.from_pretrained(self.location, subfolder=part, torch_dtype=dtype)
        return loaded.requires_grad_(False)

    @contextmanager
    def errors(self, part: str, named: str | None = None) -> Iterator[None]:
        """Whatever a damaged or half-downloaded part makes the libraries raise (OSError, a JSON
        error, safetensors' own error, a TypeError from a config of the wrong shape, ...) becomes
        one sentence naming the part and the folder."""
        try:
            yield
        except UserError:
            raise
        except (MemoryError, RecursionError):
            raise
        except Exception as error:
            reason = " ".join(str(error).split())[:300] or type(error).__name__
            if self.checkpoint is not None:
                raise UserError(
                    f"The {part} of the checkpoint {self.checkpoint.path} could not be read with the "
                    f"configs in {self.model.config} ({reason}); check that the file is complete, or "
                    "pass --model_config with a weightless diffusers folder of its shape."
                ) from error
            raise UserError(
                f"The {part} {named or f'of {self.model.name} at {self.location}'} could not be loaded "
                f"({reason}); check that it is a complete diffusers Stable Diffusion folder, or "
                "download it again."
            ) from error


@dataclass(frozen=True)
class TextEncoders:
    """The text encoders with the trigger's new tokens added, and those tokens' trainable vectors.

    One entry per text encoder in each list, in the model family's order.
    """

    tokenizers: list
    encoders: list[torch.nn.Module]
    tokens: list[str]
    token_ids: list[list[int]]
    vectors: tuple[torch.nn.Parameter, ...]

    @property
    def placeholder(self) -> str:
        """How a caption names the trigger: all its tokens, ``<t> <t>_1 ...``."""
        return " ".join(self.tokens)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(encoder.get_input_embeddings().embedding_dim for encoder in self.encoders)


@dataclass(frozen=True)
class LoadedModel:
    """The model a run trains with: its family, the text encoders and the frozen UNet with its
    noise scheduler in ``weight_dtype``, and how previews load the VAE again to decode."""

    family: ModelFamily
    text: TextEncoders
    unet: torch.nn.Module
    noise_scheduler: Any
    weight_dtype: torch.dtype
    load_vae: Callable[[], torch.nn.Module]
    # Pixels per latent cell along a side: the VAE halves the picture once per block after its first.
    vae_factor: int = 8

    def latent_shape(self, resolution: int) -> tuple[int, int, int]:
        """The latents of a square picture of ``resolution`` pixels (the previews')."""
        side = resolution // self.vae_factor
        return (self.unet.config.in_channels, side, side)


class ModelLoader(PartLoader):
    """A model family's loader for one run's settings."""

    def __init__(self, model: ModelInfo, family: ModelFamily, settings: TrainingSettings) -> None:
        super().__init__(model, settings.tokenizer_name)
        self.family = family
        self.settings = settings
        self.weight_dtype = PRECISION_DTYPES.get(settings.mixed_precision, torch.float32)

    @property
    def vae_dtype(self) -> torch.dtype:
        """The precision the latent cache is encoded in (the family's rule: SDXL's VAE overflows in fp16)."""
        return self.family.vae_dtype(self.weight_dtype, self.config("vae"))

    def vae_factor(self) -> int:
        return 2 ** (len(self.config("vae")["block_out_channels"]) - 1)

    def side_multiple(self) -> int:
        """What a picture's sides must be a multiple of for the UNet to halve them as often as it
        downsamples, after the VAE's own halving."""
        return self.vae_factor() * 2 ** (len(self.config("unet")["block_out_channels"]) - 1)

    def text_encoders(self, initial_vectors: InitialVectors = lambda _widths: None) -> TextEncoders:
        """Tokenizers and text encoders with the trigger's tokens added, each starting from the
        initializer's row, or from what ``initial_vectors`` reads for the encoders' widths
        (``--initial_embedding``: one tensor per encoder, its rows the number of tokens)."""
        s = self.settings
        slots = self.family.encoders
        tokenizers = [self.tokenizer(slot.tokenizer) for slot in slots]
        encoders = [self.text_encoder(slot.encoder, slot.kind) for slot in slots]
        initial = initial_vectors(tuple(encoder.get_input_embeddings().embedding_dim for encoder in encoders))
        tokens = new_tokens(s.token, initial[0].shape[0] if initial is not None else s.num_vectors)
        added = [
            add_tokens(tokenizer, encoder, tokens, s.initializer_token, None if initial is None else initial[i])
            for i, (tokenizer, encoder) in enumerate(zip(tokenizers, encoders))
        ]
        return TextEncoders(tokenizers, encoders, tokens, [ids for ids, _ in added],
                            tuple(parameter for _, parameter in added))

    def vae(self) -> torch.nn.Module:
        """The VAE's encoder, in the latent cache's precision."""
        vae = self.part("vae", self.vae_dtype)
        vae.decoder = None
        return vae

    def load_model(self, text: TextEncoders, device: torch.device) -> LoadedModel:
        """The UNet and its noise scheduler beside ``text``: the whole model a run trains with."""
        unet = self.part("unet", self.weight_dtype).to(device)
        vae_dtype = self.vae_dtype
        return LoadedModel(
            self.family, text, unet, self.part("scheduler", None), self.weight_dtype,
            lambda: self.part("vae", vae_dtype), self.vae_factor(),
        )
