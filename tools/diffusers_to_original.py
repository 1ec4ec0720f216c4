"""Write a diffusers Stable Diffusion folder as one checkpoint file in the original layout.

The tests need single-file checkpoints whose weights are known exactly, and no real one can be
downloaded here: this turns a tiny diffusers folder (tools/pipelines.py) into the layout the
original repositories save (CompVis/Stability ``ldm`` and ``sgm``) and every model site shares:
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE), and the text encoders under
``cond_stage_model.transformer.*`` (SD-1, transformers' CLIP layout), ``cond_stage_model.model.*``
(SD-2, OpenCLIP's layout) or ``conditioner.embedders.0.transformer.*`` and
``conditioner.embedders.1.model.*`` (SDXL). It is the inverse of the renaming diffusers'
``from_single_file`` applies (``diffusers.loaders.single_file_utils``), for any number of blocks
and layers, so the tiny models keep their shapes.

    python -m tools.diffusers_to_original <diffusers folder> <file.safetensors> [--text-layout openclip]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

UNET, VAE = "model.diffusion_model.", "first_stage_model."
TEXT_PREFIXES = {
    "clip": "cond_stage_model.transformer.",
    "openclip": "cond_stage_model.model.",
    "sdxl_l": "conditioner.embedders.0.transformer.",
    "sdxl_g": "conditioner.embedders.1.model.",
}
# diffusers' names inside a UNet resnet, and the original's.
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
          "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
            "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
VAE_TOP = {"conv_norm_out": "norm_out"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPENCLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                  "self_attn.out_proj": "attn.out_proj"}


def original_state_dict(folder: Path, text_layout: str = "clip") -> dict[str, torch.Tensor]:
    """Every weight of the diffusers pipeline in ``folder`` under its original name.

    ``text_layout`` is "clip" (SD-1) or "openclip" (SD-2) for a one-encoder pipeline; a pipeline
    with ``text_encoder_2`` is written as SDXL whatever it says.
    """
    folder = Path(folder)
    state: dict[str, torch.Tensor] = {}
    unet_config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    for name, tensor in _weights(folder / "unet").items():
        state[UNET + unet_key(name, unet_config)] = tensor
    vae_config = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    for name, tensor in _weights(folder / "vae").items():
        key, tensor = vae_key(name, tensor, len(vae_config["block_out_channels"]))
        state[VAE + key] = tensor
    if (folder / "text_encoder_2").is_dir():
        state |= clip_text(_weights(folder / "text_encoder"), TEXT_PREFIXES["sdxl_l"])
        state |= openclip_text(_weights(folder / "text_encoder_2"), TEXT_PREFIXES["sdxl_g"])
    elif text_layout == "openclip":
        state |= openclip_text(_weights(folder / "text_encoder"), TEXT_PREFIXES["openclip"])
    else:
        state |= clip_text(_weights(folder / "text_encoder"), TEXT_PREFIXES["clip"])
    return state


def unet_key(name: str, config: dict) -> str:
    """A diffusers UNet weight's original name: block ``b`` layer ``j`` of the down path is input
    block ``(L+1)*b + j + 1`` (``L`` layers per block, plus one slot for its downsampler); up
    blocks have ``L+1`` layers and count from output block 0."""
    per_block = config["layers_per_block"] + 1
    parts = name.split(".")
    for diffusers, original in UNET_TOP.items():
        if name.startswith(diffusers + "."):
            return original + name[len(diffusers):]
    if parts[0] == "down_blocks":
        block, kind = int(parts[1]), parts[2]
        if kind == "downsamplers":
            return f"input_blocks.{per_block * (block + 1)}.0.op." + ".".join(parts[5:])
        return _layer(f"input_blocks.{per_block * block + int(parts[3]) + 1}", kind, parts[4:])
    if parts[0] == "up_blocks":
        block, kind = int(parts[1]), parts[2]
        if kind == "upsamplers":
            has_attention = config["up_block_types"][block].startswith("CrossAttn")
            slot = per_block * block + per_block - 1
            return f"output_blocks.{slot}.{2 if has_attention else 1}.conv." + ".".join(parts[5:])
        return _layer(f"output_blocks.{per_block * block + int(parts[3])}", kind, parts[4:])
    if parts[0] == "mid_block":
        # resnet, attention, resnet: middle blocks 0, 1 and 2, with no layer slot inside.
        kind, index, rest = parts[1], int(parts[2]), parts[3:]
        if kind == "attentions":
            return "middle_block.1." + ".".join(rest)
        return f"middle_block.{2 * index}." + ".".join([RESNET.get(rest[0], rest[0]), *rest[1:]])
    raise ValueError(f"no original name for the UNet weight {name}")


def _layer(block: str, kind: str, rest: list[str]) -> str:
    if kind == "resnets":
        return f"{block}.0." + ".".join([RESNET.get(rest[0], rest[0]), *rest[1:]])
    return f"{block}.1." + ".".join(rest)


def vae_key(name: str, tensor: torch.Tensor, blocks: int) -> tuple[str, torch.Tensor]:
    """A diffusers VAE weight's original name; the decoder's up blocks count the other way, and
    the mid-block attention's linear layers were 1x1 convolutions."""
    parts = name.split(".")
    side = parts[0]
    if parts[1] in VAE_TOP:
        return f"{side}.{VAE_TOP[parts[1]]}.{parts[2]}", tensor
    if parts[1] in ("down_blocks", "up_blocks"):
        index = int(parts[2]) if side == "encoder" else blocks - 1 - int(parts[2])
        where = "down" if side == "encoder" else "up"
        if parts[3] in ("downsamplers", "upsamplers"):
            sampler = "downsample" if side == "encoder" else "upsample"
            return f"{side}.{where}.{index}.{sampler}.conv.{parts[-1]}", tensor
        inner = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
        return f"{side}.{where}.{index}.block.{parts[4]}.{inner}", tensor
    if parts[1] == "mid_block":
        if parts[2] == "resnets":
            inner = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.mid.block_{int(parts[3]) + 1}.{inner}", tensor
        inner = ".".join(parts[4:])
        for diffusers, original in VAE_ATTENTION.items():
            if inner.startswith(diffusers + "."):
                inner = original + inner[len(diffusers):]
        if tensor.ndim == 2:
            tensor = tensor[:, :, None, None]
        return f"{side}.mid.attn_1.{inner}", tensor
    return name, tensor  # quant_conv and post_quant_conv keep their names


def clip_text(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """transformers' CLIP layout, always with its ``text_model.`` level (recent transformers save
    without it; released checkpoints have it)."""
    return {prefix + (name if name.startswith(("text_model.", "text_projection.")) else f"text_model.{name}"): tensor
            for name, tensor in weights.items() if not name.endswith("position_ids")}


def openclip_text(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """OpenCLIP's layout: one ``in_proj`` matrix for q, k and v, and the projection transposed."""
    weights = {name.removeprefix("text_model."): tensor for name, tensor in weights.items()}
    state = {
        prefix + "token_embedding.weight": weights.pop("embeddings.token_embedding.weight"),
        prefix + "positional_embedding": weights.pop("embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": weights.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": weights.pop("final_layer_norm.bias"),
    }
    if "text_projection.weight" in weights:
        state[prefix + "text_projection"] = weights.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(name.split(".")[2]) for name in weights if name.startswith("encoder.layers.")})
    for layer in layers:
        source, target = f"encoder.layers.{layer}.", f"{prefix}transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            state[target + f"attn.in_proj_{kind}"] = torch.cat(
                [weights.pop(source + f"self_attn.{p}_proj.{kind}") for p in "qkv"]
            )
        for name in [n for n in weights if n.startswith(source)]:
            inner = name[len(source):]
            for diffusers, original in OPENCLIP_LAYER.items():
                if inner.startswith(diffusers + "."):
                    inner = original + inner[len(diffusers):]
            state[target + inner] = weights.pop(name)
    left = [name for name in weights if not name.endswith("position_ids")]
    if left:
        raise ValueError(f"no OpenCLIP name for {left}")
    return state


def write_original_checkpoint(folder: Path, target: Path, text_layout: str = "clip") -> Path:
    """``folder`` as one file: .safetensors, or .ckpt (``torch.save`` of ``{"state_dict": ...}``)."""
    state = {key: tensor.contiguous() for key, tensor in original_state_dict(folder, text_layout).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(target))
    else:
        torch.save({"state_dict": state}, str(target))
    return target


def _weights(part: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(part.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{part} has no .safetensors weights")
    return {name: tensor for file in files for name, tensor in load_file(str(file)).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--text-layout", choices=("clip", "openclip"), default="clip")
    args = parser.parse_args()
    print(write_original_checkpoint(args.folder, args.target, args.text_layout))


if __name__ == "__main__":
    main()
