"""Training on a single-file checkpoint: one ``.safetensors`` (or tensors-only ``.ckpt``) file in
the original Stable Diffusion layout, as InvokeAI, kohya's sd-scripts and most model sites keep it.

Such a file holds the weights only; what shape they are (how many layers, which scheduler, the
tokenizer's vocabulary) lives in a weightless diffusers folder beside the code that reads it.
Those folders for SD-1.5, SD-2.1 (768-v) and SDXL base 1.0 ship in ``model_configs/``
(docs/checkpoint_files.md says where each number comes from); ``--model_config`` names another for a
checkpoint of another shape, as diffusers' own ``from_single_file(config=...)`` does. The base is
told from the weights' names and shapes, so nothing is ever downloaded to guess it.

Each part is read on its own (only the tensors under its prefix) and converted by diffusers'
single-file code, so a run holds one part at a time, as it does when loading a folder.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bases import BASE_SD1, BASE_SD2, BASE_SDXL, BASE_SDXL_REFINER, BASE_UNKNOWN
from .files import json_object_or_empty

CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors")
CONFIGS = Path(__file__).with_name("model_configs")
# The weightless folder each base is loaded with when --model_config is not given. SD-2's two
# published variants have the same weights' shapes; 768-v (v-prediction, 768 pixels) is assumed,
# as diffusers and InvokeAI assume for an SD-2 checkpoint; a 512 base model needs --model_config.
SHIPPED = {BASE_SD1: "sd-1.5", BASE_SD2: "sd-2.1-768-v", BASE_SDXL: "sdxl-base-1.0"}
# CLIP's byte-pair vocabulary as open_clip_torch ships it (MIT); vocab.json and merges.txt are
# derived from it once per user, into ``cache_folder()``.
BPE_FILE = CONFIGS / "clip_vocabulary" / "bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"

# Where each part's tensors live in the original layout.
UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD1_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."
SDXL_TEXT_L = "conditioner.embedders.0."
SDXL_TEXT_G = "conditioner.embedders.1."
PART_PREFIXES = {
    "unet": (UNET,),
    "vae": (VAE,),
    "text_encoder": ("cond_stage_model.", SDXL_TEXT_L),
    "text_encoder_2": (SDXL_TEXT_G,),
}
# Each base's token embeddings, one per text encoder: their second dimension is its width.
TOKEN_EMBEDDINGS = {
    BASE_SD1: (SD1_TEXT + "text_model.embeddings.token_embedding.weight",),
    BASE_SD2: (SD2_TEXT + "token_embedding.weight",),
    BASE_SDXL: (SDXL_TEXT_L + "transformer.text_model.embeddings.token_embedding.weight",
                SDXL_TEXT_G + "model.token_embedding.weight"),
    BASE_SDXL_REFINER: (SDXL_TEXT_L + "model.token_embedding.weight",),
}
# The UNet's cross-attention keys: their width is the text context the UNet attends to.
CROSS_ATTENTION = re.compile(
    r"^model\.diffusion_model\.(input_blocks|middle_block|output_blocks)\.[\d.]*"
    r"transformer_blocks\.0\.attn2\.to_k\.weight$"
)
WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
# The first diffusers whose single-file code converts each part on its own with a local config
# (``create_diffusers_clip_model_from_ldm``, ``UNet2DConditionModel.from_single_file(config=...)``).
DIFFUSERS_FOR_CHECKPOINTS = (0, 28)

CONVERT_PICKLE_HINT = (
    "convert it to .safetensors with a tool you trust (InvokeAI's model manager does) and pass that "
    "file, or pass a diffusers folder"
)
DAMAGED_HINT = "download or copy the file again"
OTHER_SHAPE_HINT = (
    "pass --model_config with a weightless diffusers folder of this model's shape (its model_index.json "
    "and each part's config, as a diffusers repo has them)"
)


class CheckpointProblem(Exception):
    """Why a checkpoint cannot be trained on, and the fix, for ``models`` to word as one sentence."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


@dataclass(frozen=True)
class CheckpointShape:
    """What the weights say about a checkpoint, read from its tensors' names and shapes."""

    base: str
    # One width per text encoder (clip_l then clip_g for SDXL).
    token_dims: tuple[int, ...]
    # The text width the UNet's cross-attention expects; None when its layers disagree or are absent.
    context_width: int | None


def is_checkpoint_file(path: Path) -> bool:
    return path.suffix.lower() in CHECKPOINT_SUFFIXES


def read_shape(path: Path) -> CheckpointShape:
    """The base and widths of the checkpoint at ``path``; raises ``CheckpointProblem``.

    A .safetensors file is read from its header alone, which is instant however large the file.
    """
    shapes = _tensor_shapes(path)
    base = _base_of(shapes)
    if base == BASE_UNKNOWN:
        raise CheckpointProblem(
            f"the file {path} is not a whole Stable Diffusion 1, 2 or SDXL checkpoint: it lacks the "
            "UNet (model.diffusion_model.*), the VAE (first_stage_model.*) or the text encoder "
            "(cond_stage_model.* or conditioner.embedders.*) that such a checkpoint holds",
            "pass a checkpoint of a whole model (a LoRA, VAE or embedding file cannot be trained on), "
            "or a diffusers folder",
        )
    widths = tuple(shapes[key][1] for key in TOKEN_EMBEDDINGS[base] if len(shapes.get(key, ())) == 2)
    contexts = {shape[1] for key, shape in shapes.items() if CROSS_ATTENTION.match(key) and len(shape) == 2}
    return CheckpointShape(base, widths, contexts.pop() if len(contexts) == 1 else None)


def diffusers_problem() -> CheckpointProblem | None:
    """An older diffusers cannot read a checkpoint part by part; said before anything loads, from
    the installed version alone (importing diffusers would slow every listing of models)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("diffusers")
    except PackageNotFoundError:
        installed = "none"
    numbers = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if numbers >= DIFFUSERS_FOR_CHECKPOINTS:
        return None
    return CheckpointProblem(
        f"training on a single-file checkpoint needs diffusers 0.28 or later, and {installed} is installed",
        "upgrade it (pip install -U 'diffusers>=0.28') or pass a diffusers folder",
    )


def shipped_config(base: str) -> Path | None:
    """The weightless folder shipped for ``base``, or None for a base with none (a refiner)."""
    return CONFIGS / SHIPPED[base] if base in SHIPPED else None


def config_problem(path: Path, shape: CheckpointShape, config: Path) -> CheckpointProblem | None:
    """Whether ``config`` describes the checkpoint's shape, checked on the widths both state,
    before any weight loads: a mismatch would otherwise surface as a tensor-shape error deep in
    diffusers."""
    configs = {part: json_object_or_empty(config / part / "config.json")
               for part in ("text_encoder", "text_encoder_2", "unet")}
    if not (config / "model_index.json").is_file() or not configs["unet"] or not configs["text_encoder"]:
        return CheckpointProblem(
            f"the folder {config} is not a weightless diffusers folder: it needs model_index.json and "
            "unet/config.json, text_encoder/config.json, vae/config.json, scheduler/ and tokenizer/",
            "pass the folder of a diffusers model (its weights may be left out)",
        )
    stated = tuple(configs[part].get("hidden_size") for part in ("text_encoder", "text_encoder_2") if configs[part])
    context = configs["unet"].get("cross_attention_dim")
    if stated != shape.token_dims or (shape.context_width is not None and context != shape.context_width):
        return CheckpointProblem(
            f"the checkpoint {path} has {_widths_text(shape.token_dims, shape.context_width)}, but the "
            f"configs in {config} describe {_widths_text(stated, context)}",
            OTHER_SHAPE_HINT,
        )
    return None


def weightless_folder(config: Path) -> Path:
    """The folder the parts' configs and tokenizers load from.

    A shipped folder holds no vocabulary (one copy serves all three bases), and neither need a
    copy of one that a user edited: the first use assembles the folder, with vocab.json and
    merges.txt derived from CLIP's BPE file, in the user's cache, where it stays for later runs.
    A folder whose tokenizers are complete is used as it is.
    """
    config = Path(config)
    if all(_has_vocabulary(tokenizer) for tokenizer in config.glob("tokenizer*")):
        return config
    target = cache_folder() / f"{config.name}-{_digest(config)}"
    if not (target / "model_index.json").is_file():
        _assemble(config, target)
    return target


def cache_folder() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("invokeai-ti")) / "model-configs"


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary and merges, derived from its BPE file as CLIP's own tokenizer derives them.

    The first 256 entries are CLIP's byte characters, the next 256 the same with ``</w>`` (a word's
    end), then one entry per merge in rank order, then the start and end tokens: 49408 entries,
    ``<|startoftext|>`` 49406 and ``<|endoftext|>`` 49407, as in openai/clip-vit-large-patch14.
    """
    lines = gzip.decompress(BPE_FILE.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:CLIP_MERGES + 1]
    symbols = _byte_characters()
    vocabulary = symbols + [symbol + "</w>" for symbol in symbols]
    vocabulary += ["".join(merge.split()) for merge in merges] + [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(vocabulary)}, merges


class CheckpointFile:
    """Reads the parts of one checkpoint, each through diffusers' single-file conversion.

    ``config`` is the weightless folder (from ``weightless_folder``) whose part configs say each
    part's shape; nothing is fetched (``local_files_only``).
    """

    def __init__(self, path: Path, config: Path) -> None:
        self.path = Path(path)
        self.config = Path(config)

    def text_encoder(self, kind: type, subfolder: str):
        """A transformers CLIP text encoder (``kind``) for ``subfolder`` of the folder's layout."""
        from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

        tensors = self.tensors(PART_PREFIXES[subfolder])
        return create_diffusers_clip_model_from_ldm(
            kind, tensors, subfolder=subfolder, config=str(self.config), local_files_only=True,
        )

    def model_part(self, kind: Any, part: str, dtype):
        """A diffusers ``UNet2DConditionModel`` or ``AutoencoderKL`` (``kind``) in ``dtype``."""
        return kind.from_single_file(
            self.tensors(PART_PREFIXES[part]), config=str(self.config), subfolder=part,
            torch_dtype=dtype, local_files_only=True,
        )

    def tensors(self, prefixes: tuple[str, ...]) -> dict[str, Any]:
        """The tensors under ``prefixes`` only, so a part's load never holds the whole file."""
        return _read_tensors(self.path, lambda key: key.startswith(prefixes))


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own SafetensorError for a torn header
            raise _damaged(path, error) from error
    return {key: tuple(tensor.shape) for key, tensor in _read_tensors(path, lambda key: True).items()}


def _read_tensors(path: Path, wanted: Callable[[str], bool]) -> dict[str, Any]:
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {key: handle.get_tensor(key) for key in handle.keys() if wanted(key)}
        except Exception as error:
            raise _damaged(path, error) from error
    return {key: tensor for key, tensor in _pickle_free_state(path).items() if wanted(key)}


def _pickle_free_state(path: Path) -> dict[str, Any]:
    """A .ckpt's tensors, read with ``weights_only``: a file that needs more is refused, since
    unpickling an arbitrary object can run code the file's author chose."""
    import torch

    try:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # an old, non-zip .ckpt cannot be memory-mapped
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if str(error).startswith(WEIGHTS_ONLY_REFUSAL):
            raise CheckpointProblem(
                f"the checkpoint {path} holds Python objects besides its tensors, and loading those "
                "could run code from the file, so it is not opened",
                CONVERT_PICKLE_HINT,
            ) from error
        raise _damaged(path, error) from error
    except Exception as error:  # a torn zip, a file that is no checkpoint at all
        raise _damaged(path, error) from error
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise _damaged(path, TypeError("it holds no table of tensors"))
    return {key: value for key, value in state.items() if isinstance(key, str) and isinstance(value, torch.Tensor)}


def _damaged(path: Path, error: BaseException) -> CheckpointProblem:
    reason = " ".join(str(error).split())[:200]
    return CheckpointProblem(f"the file {path} could not be read as a checkpoint ({reason})", DAMAGED_HINT)


def _base_of(shapes: dict[str, tuple[int, ...]]) -> str:
    """SDXL has two text encoders under ``conditioner.embedders`` (its refiner only the OpenCLIP
    one, as embedder 0); SD-2 has one OpenCLIP encoder (``cond_stage_model.model``), SD-1 one
    CLIP encoder in transformers' layout (``cond_stage_model.transformer``)."""

    def has(prefix: str) -> bool:
        return any(key.startswith(prefix) for key in shapes)

    if not (has(UNET) and has(VAE)):
        return BASE_UNKNOWN
    if has(SDXL_TEXT_L + "transformer.") and has(SDXL_TEXT_G + "model."):
        return BASE_SDXL
    if has(SDXL_TEXT_L + "model.") and not has(SDXL_TEXT_G):
        return BASE_SDXL_REFINER
    if has(SD2_TEXT):
        return BASE_SD2
    if has(SD1_TEXT):
        return BASE_SD1
    return BASE_UNKNOWN


def _widths_text(token_dims: tuple, context: Any) -> str:
    widths = " and ".join(str(width) for width in token_dims)
    encoders = f"a text encoder {widths} wide" if len(token_dims) == 1 else f"text encoders {widths} wide"
    return f"{encoders} and a UNet attending to {context}-wide text"


def _has_vocabulary(tokenizer: Path) -> bool:
    return (tokenizer / "tokenizer.json").is_file() or (
        (tokenizer / "vocab.json").is_file() and (tokenizer / "merges.txt").is_file()
    )


def _digest(config: Path) -> str:
    """Names the assembled copy by what it was made from, so an edited folder or a newer package
    never reuses an older copy."""
    digest = hashlib.sha256(BPE_FILE.read_bytes())
    for file in sorted(p for p in config.rglob("*") if p.is_file()):
        digest.update(file.relative_to(config).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


def _assemble(config: Path, target: Path) -> None:
    """Copy the shipped folder and add the vocabulary to each tokenizer; built beside ``target``
    and renamed onto it, so a crash or a second process never leaves a half-made folder there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(config, partial)
    vocabulary, merges = clip_vocabulary()
    for tokenizer in partial.glob("tokenizer*"):
        if _has_vocabulary(tokenizer):
            continue
        (tokenizer / "vocab.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        (tokenizer / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    try:
        os.rename(partial, target)
    except OSError:  # another process assembled it first
        shutil.rmtree(partial, ignore_errors=True)
        if not (target / "model_index.json").is_file():
            raise


def _byte_characters() -> list[str]:
    """CLIP's ``bytes_to_unicode`` values in its order: the printable bytes as themselves, then the
    others, in byte order, as the characters from 256 on (so "!" is entry 0, as in CLIP)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + index) for index in range(len(others))]
