"""Make a world model from scratch: the one command that produced the shipped weights.

    python -m tools.pretrain --out DIR [--family sd1|sdxl] [--seed N] [--minutes M]

Phases on pictures rendered once from the seed: the judge (or, for SDXL, the SD-1 world's own
judge, so both models are read by the same eyes), the VAE, then the UNet and the text encoders
together on cached latents. Both families run this one code path: only the parts built, the
tokenizers written and the family's conditioning differ, and that conditioning is the trainer's
own (``training.family``), so what textual inversion sends the UNet is what it learned from.

``--minutes`` is split between the phases and turned into step counts after timing each phase's first steps (a phase that runs past its time stops early).
Both counts are written to ``world.json``, and passing them back (``--unet-steps`` for the
planned length, ``--unet-stop`` where it stopped, the same for ``judge`` and ``vae``) repeats the
run exactly: the same seed and counts give the same weights on the same machine, torch version
and thread count (CPU kernels are deterministic; other CPUs may round differently).

The recipe, for a small model in little CPU time: pairs sampled evenly, AdamW with warmup and
cosine decay, min-SNR loss weighting, an exponential moving average of the weights (what is
saved), and 10% empty captions so classifier-free guidance works. SD's noise schedule is kept so
the trainer treats the folder as any SD-1 or SDXL model. An SDXL world is also told, for every
picture, time ids drawn the way the trainer computes them for users' photos (a true size from
32 px to 2048 px, square or not, and the crop a square bucket takes from it), so the sizes and
crops the trainer sends are ones it has learned to ignore.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time

# Threads that spin while a peer is descheduled make a shared CPU crawl; sleeping ones don't.
# Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from invokeai_ti.data.buckets import Bucket, fit
from invokeai_ti.quiet import quiet_imports, quiet_library_progress
from invokeai_ti.training.family import ModelFamily, StableDiffusionFamily, StableDiffusionXLFamily
from invokeai_ti.world import JUDGE_WEIGHTS, MARKER, MARKER_KIND, WORLD_MODEL
from invokeai_ti.world.judge import JudgeNet
from invokeai_ti.world.scene import CAPTION_TEMPLATES, COLOURS, GENERIC_NOUNS, PAIRS, SHAPES, SIZE, caption, draw

from .pipelines import PIPELINE_INDEX, SDXL_PIPELINE_INDEX, write_pipeline_index
from .vocabulary import write_world_tokenizer

TOKEN_WIDTH = 64
SDXL_WIDTHS = (64, 96)
"""clip_l's and clip_g's widths: different, as 768 and 1280 are, so a swap fails loudly."""
SDXL_PROJECTION = 96
SDXL_TIME_EMBED = 16
SDXL_TEXT_LAYERS = 3
"""SDXL reads its encoders' penultimate layer; three layers leave two of mixing before it."""
FAMILIES = ("sd1", "sdxl")
LATENT_SIDE = SIZE // 4
PHASE_SHARES = {"judge": 0.05, "vae": 0.17, "unet": 0.78}
"""How ``--minutes`` is split; the UNet, which decides what the model can draw, gets most."""
SAVE_RESERVE_S = 20.0
HELD_OUT = 960
HELD_OUT_SEED_OFFSET = 1_000_003
DROPOUT = 0.10
SHAPE_ONLY = 0.08
COLOUR_ONLY = 0.08


@dataclass
class Recipe:
    family: str = "sd1"
    seed: int = 0
    images: int = 24000
    batch: int = 64
    judge_steps: int | None = None
    vae_steps: int | None = None
    unet_steps: int | None = None
    judge_stop: int | None = None
    vae_stop: int | None = None
    unet_stop: int | None = None
    unet_lr: float = 1e-3
    vae_lr: float = 2e-3
    judge_lr: float = 2e-3
    ema_decay: float = 0.999
    threads: int = 1


def _text_config(vocab_size: int, width: int, layers: int, **extra: int):
    with quiet_imports():
        from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
        num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra,
    )


def build_parts(family: str, vocab_size: int):
    """The text encoders, VAE and UNet with fresh weights: about 2.1M parameters for SD-1, 2.4M
    for SDXL. The UNets share their blocks; SDXL's also takes the pooled text and the time ids
    (``text_time``) and attends to both encoders' states side by side."""
    with quiet_imports():
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if family == "sd1":
        text_encoders = [CLIPTextModel(_text_config(vocab_size, TOKEN_WIDTH, 2))]
        conditioning: dict[str, object] = {"cross_attention_dim": TOKEN_WIDTH}
    else:
        width_l, width_g = SDXL_WIDTHS
        text_encoders = [
            CLIPTextModel(_text_config(vocab_size, width_l, SDXL_TEXT_LAYERS)),
            CLIPTextModelWithProjection(
                _text_config(vocab_size, width_g, SDXL_TEXT_LAYERS, projection_dim=SDXL_PROJECTION)),
        ]
        conditioning = {
            "cross_attention_dim": width_l + width_g, "addition_embed_type": "text_time",
            "addition_time_embed_dim": SDXL_TIME_EMBED,
            "projection_class_embeddings_input_dim": SDXL_PROJECTION + 6 * SDXL_TIME_EMBED,
        }
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=SIZE,
    )
    unet = UNet2DConditionModel(
        sample_size=LATENT_SIDE, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 48, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=4, norm_num_groups=16, **conditioning,
    )
    return text_encoders, vae, unet


def write_tokenizers(family: str, out: Path) -> list:
    """SD-1's one tokenizer, or SDXL's two: the same words, the second padding with "!" as
    SDXL's OpenCLIP tokenizer does."""
    with quiet_imports():
        from transformers import CLIPTokenizer

    folders = [("tokenizer", "<|endoftext|>")] + ([("tokenizer_2", "!")] if family == "sdxl" else [])
    tokenizers = []
    for name, pad in folders:
        write_world_tokenizer(out / name, pad_token=pad)
        with quiet_imports():
            tokenizers.append(CLIPTokenizer.from_pretrained(str(out / name)))
    return tokenizers


def model_family(family: str) -> ModelFamily:
    return StableDiffusionXLFamily() if family == "sdxl" else StableDiffusionFamily()


SQUARE_ORIGINALS = 0.5
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 5 / 4, 2.0)
SQUASHED = 0.2


def photo_time_ids(rng: random.Random) -> list[float]:
    """Time ids as the trainer computes them for a user's photo that trains at the world's square:
    the photo's true height and width (32 px to 2048 px; square half the time, else a common
    aspect either way up), the crop the square bucket takes from it, or none when the photo is
    squashed (``--no-bucket`` without ``--center_crop``), and the square as the target."""
    side = math.exp(rng.uniform(math.log(SIZE), math.log(2048)))
    aspect = 1.0 if rng.random() < SQUARE_ORIGINALS else rng.choice(ASPECTS)
    width, height = round(side * aspect), round(side)
    if rng.random() < 0.5:
        width, height = height, width
    top = left = 0
    if rng.random() >= SQUASHED:
        cut = fit(width, height, Bucket(SIZE, SIZE))
        top, left = cut.crop_top, rng.choice((cut.crop_left, cut.mirrored_crop_left))
    return [float(height), float(width), float(top), float(left), float(SIZE), float(SIZE)]


def sd_scheduler_config() -> dict[str, object]:
    """SD-1's betas; the sampler is DPM-Solver++ as in the trainer's previews."""
    return dict(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        prediction_type="epsilon", steps_offset=1,
    )


def render(seed: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` pictures as uint8 N x 3 x SIZE x SIZE, with colour and shape indices; pairs cycle
    in shuffled rounds so every pair is equally common."""
    rng = random.Random(seed)
    pictures = np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    colours, shapes = [], []
    order: list[tuple[str, str]] = []
    for index in range(count):
        if not order:
            order = list(PAIRS)
            rng.shuffle(order)
        colour, shape = order.pop()
        pictures[index] = np.asarray(draw(colour, shape, rng))
        colours.append(COLOURS.index(colour))
        shapes.append(SHAPES.index(shape))
    return (torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous(), torch.tensor(colours),
            torch.tensor(shapes))


def as_pixels(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 127.5 - 1.0


def judge_augment(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur, noise and tone jitter: what separates a drawn picture from a generated one."""
    count = pixels.shape[0]
    blurred = F.avg_pool2d(pixels, 3, stride=1, padding=1, count_include_pad=False)
    mix = torch.rand(count, 1, 1, 1, generator=generator)
    pixels = pixels * (1 - mix) + blurred * mix
    pixels = pixels * (1 + 0.15 * (torch.rand(count, 1, 1, 1, generator=generator) - 0.5))
    pixels = pixels + 0.1 * (torch.rand(count, 3, 1, 1, generator=generator) - 0.5)
    pixels = pixels + 0.06 * torch.rand(count, 1, 1, 1, generator=generator) * torch.randn(
        pixels.shape, generator=generator)
    return pixels.clamp(-1, 1)


class Phase:
    """A training loop whose length comes from ``steps`` or, if None, from ``seconds``: the first
    steps are timed and the count is fixed from their pace, so the learning-rate schedule knows
    its end. ``planned`` and ``done`` (fewer if time ran out, or ``stop`` was given) say what ran."""

    WARMUP = 200
    TIMED = 8

    def __init__(self, name: str, steps: int | None, stop: int | None, seconds: float, deadline: float) -> None:
        self.name, self.steps, self.stop, self.seconds, self.deadline = name, steps, stop, seconds, deadline
        self.planned = self.done = 0

    def run(self, step: Callable[[int, float], float], lr: float) -> int:
        start = time.monotonic()
        total = self.steps
        done, losses = 0, []
        while (total is None or done < total) and (self.stop is None or done < self.stop):
            if total is None and done == self.TIMED:
                pace = (time.monotonic() - start) / self.TIMED
                total = max(self.TIMED + 1, int(self.seconds / pace))
                print(f"{self.name}: {pace * 1000:.0f} ms/step, planning {total} steps", flush=True)
            if self.steps is None and time.monotonic() > self.deadline:
                print(f"{self.name}: out of time after {done} steps", flush=True)
                break
            losses.append(step(done, lr * _schedule(done, total or 10**9, self.WARMUP)))
            done += 1
            if done % 200 == 0:
                print(f"{self.name}: step {done}/{total} loss {np.mean(losses[-200:]):.4f} "
                      f"({time.monotonic() - start:.0f} s)", flush=True)
        print(f"{self.name}: {done} steps in {time.monotonic() - start:.0f} s", flush=True)
        self.planned, self.done = total or done, done
        return done


def _schedule(step: int, total: int, warmup: int) -> float:
    warmup = min(warmup, max(1, total // 5))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_judge(pictures, colours, shapes, phase: Phase, recipe: Recipe, generator) -> JudgeNet:
    net = JudgeNet()
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.judge_lr, weight_decay=1e-4)

    def step(_: int, lr: float) -> float:
        _set_lr(optimizer, lr)
        index = torch.randint(0, len(pictures), (recipe.batch,), generator=generator)
        colour_logits, shape_logits = net(judge_augment(as_pixels(pictures[index]), generator))
        loss = F.cross_entropy(colour_logits, colours[index]) + F.cross_entropy(shape_logits, shapes[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    phase.run(step, recipe.judge_lr)
    return net.eval()


@torch.no_grad()
def held_out_accuracy(net: JudgeNet, seed: int) -> float:
    """Both colour and shape right, on pictures from a seed pretraining never renders."""
    pictures, colours, shapes = render(seed + HELD_OUT_SEED_OFFSET, HELD_OUT)
    colour_logits, shape_logits = net(as_pixels(pictures))
    right = (colour_logits.argmax(1) == colours) & (shape_logits.argmax(1) == shapes)
    return right.float().mean().item()


def train_vae(vae, pictures, phase: Phase, recipe: Recipe, generator) -> None:
    """L1 and squared error keep edges crisp; a tiny KL term keeps latents Gaussian-ish, as SD's."""
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=1e-4)
    batch = recipe.batch // 2

    def step(_: int, lr: float) -> float:
        _set_lr(optimizer, lr)
        index = torch.randint(0, len(pictures), (batch,), generator=generator)
        pixels = as_pixels(pictures[index])
        posterior = vae.encode(pixels).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        decoded = vae.decode(latents).sample
        loss = (decoded - pixels).abs().mean() + (decoded - pixels).pow(2).mean() + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    phase.run(step, recipe.vae_lr)


@torch.no_grad()
def encode_all(vae, pictures) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for start in range(0, len(pictures), 512):
        posterior = vae.encode(as_pixels(pictures[start:start + 512])).latent_dist
        means.append(posterior.mean)
        stds.append(posterior.std)
    return torch.cat(means), torch.cat(stds)


def training_caption(colour: str, shape: str, rng: random.Random) -> str:
    """Mostly the full caption; sometimes colour or shape alone; 10% empty, for guidance."""
    roll = rng.random()
    template = CAPTION_TEMPLATES[0] if rng.random() < 0.5 else rng.choice(CAPTION_TEMPLATES)
    if roll < DROPOUT:
        return ""
    if roll < DROPOUT + SHAPE_ONLY:
        return template.format(shape)
    if roll < DROPOUT + SHAPE_ONLY + COLOUR_ONLY:
        return template.format(f"{colour} {rng.choice(GENERIC_NOUNS)}")
    return template.format(f"{colour} {shape}")


def train_unet(unet, text_encoders: list, tokenizers: list, latents, scaling: float, colours, shapes,
               phase: Phase, recipe: Recipe, generator, rng: random.Random) -> tuple[object, list]:
    """Returns the moving averages of the UNet and the text encoders, which sample better.

    The UNet is conditioned by the family exactly as the trainer conditions it."""
    with quiet_imports():
        from diffusers import DDPMScheduler
    family = model_family(recipe.family)
    noise_scheduler = DDPMScheduler(**sd_scheduler_config())
    alphas = noise_scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    weights = torch.clamp(snr, max=5.0) / snr
    means, stds = latents
    models = [unet, *text_encoders]
    parameters = [parameter for model in models for parameter in model.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=recipe.unet_lr, weight_decay=1e-2, betas=(0.9, 0.99))
    averages = [copy.deepcopy(model).eval() for model in models]
    ema_parameters = [parameter for model in averages for parameter in model.parameters()]
    token_cache: dict[tuple[int, str], torch.Tensor] = {}

    def ids_for(slot: int, text: str) -> torch.Tensor:
        if (slot, text) not in token_cache:
            token_cache[slot, text] = tokenizers[slot](
                text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids[0]
        return token_cache[slot, text]

    def step(done: int, lr: float) -> float:
        _set_lr(optimizer, lr)
        index = torch.randint(0, len(means), (recipe.batch,), generator=generator)
        clean = (means[index] + stds[index] * torch.randn(means[index].shape, generator=generator)) * scaling
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (recipe.batch,), generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        texts = [training_caption(COLOURS[c], SHAPES[s], rng)
                 for c, s in zip(colours[index].tolist(), shapes[index].tolist())]
        ids = [torch.stack([ids_for(slot, text) for text in texts]) for slot in range(len(tokenizers))]
        time_ids = (torch.tensor([photo_time_ids(rng) for _ in texts])
                    if recipe.family == "sdxl" else None)
        predicted = unet(noisy, timesteps, **family.conditioning(text_encoders, ids, time_ids)).sample
        loss = ((predicted - noise).pow(2).mean(dim=(1, 2, 3)) * weights[timesteps]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        decay = min(recipe.ema_decay, (1 + done) / (10 + done))
        with torch.no_grad():
            torch._foreach_lerp_(ema_parameters, parameters, 1 - decay)
        return loss.item()

    phase.run(step, recipe.unet_lr)
    return averages[0], averages[1:]


def pretrain(out: Path, recipe: Recipe, minutes: float, judge_from: Path | None = None) -> dict[str, object]:
    """Write the family's full pipeline folder and the judge to ``out``; returns what
    ``world.json`` records. ``judge_from`` reuses a trained judge instead of training one."""
    started = time.monotonic()
    budget = minutes * 60.0
    deadline = started + budget - SAVE_RESERVE_S
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    rng = random.Random(recipe.seed + 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizers = write_tokenizers(recipe.family, out)
    with quiet_imports():
        from diffusers import DPMSolverMultistepScheduler
    text_encoders, vae, unet = build_parts(recipe.family, len(tokenizers[0]))

    pictures, colours, shapes = render(recipe.seed, recipe.images)
    print(f"rendered {len(pictures)} pictures ({time.monotonic() - started:.0f} s)", flush=True)
    phases = [name for name in PHASE_SHARES if not (name == "judge" and judge_from is not None)]

    def phase(name: str) -> Phase:
        remaining = max(1.0, deadline - time.monotonic())
        share_left = sum(PHASE_SHARES[key] for key in phases[phases.index(name):])
        seconds = remaining * PHASE_SHARES[name] / share_left
        return Phase(name, getattr(recipe, f"{name}_steps"), getattr(recipe, f"{name}_stop"), seconds,
                     time.monotonic() + seconds * 1.1)

    def record(done: Phase) -> None:
        setattr(recipe, f"{done.name}_steps", done.planned)
        setattr(recipe, f"{done.name}_stop", done.done if done.done < done.planned else None)

    if judge_from is None:
        judge_phase = phase("judge")
        judge_net = train_judge(pictures, colours, shapes, judge_phase, recipe, generator)
        record(judge_phase)
    else:
        from safetensors.torch import load_file

        judge_net = JudgeNet()
        judge_net.load_state_dict(load_file(str(judge_from)))
        judge_net.eval()
        recipe.judge_steps = recipe.judge_stop = None
    judge_accuracy = held_out_accuracy(judge_net, recipe.seed)
    print(f"judge: {judge_accuracy:.1%} right on {HELD_OUT} held-out pictures", flush=True)
    vae_phase = phase("vae")
    train_vae(vae, pictures, vae_phase, recipe, generator)
    record(vae_phase)
    vae.eval()
    means, stds = encode_all(vae, pictures)
    scaling = float(1.0 / means.std().clamp(min=1e-3))
    vae.register_to_config(scaling_factor=scaling)
    unet_phase = phase("unet")
    unet_phase.deadline = deadline
    unet, text_encoders = train_unet(unet, text_encoders, tokenizers, (means, stds), scaling, colours, shapes,
                                     unet_phase, recipe, generator, rng)
    record(unet_phase)

    from safetensors.torch import save_file

    encoder_folders = ("text_encoder", "text_encoder_2")
    with quiet_library_progress():
        for folder, encoder in zip(encoder_folders, text_encoders):
            encoder.save_pretrained(str(out / folder))
        vae.save_pretrained(str(out / "vae"))
        unet.save_pretrained(str(out / "unet"))
        DPMSolverMultistepScheduler(**sd_scheduler_config()).save_pretrained(str(out / "scheduler"))
    save_file({name: tensor.contiguous() for name, tensor in judge_net.state_dict().items()},
              str(out / JUDGE_WEIGHTS))
    write_pipeline_index(out, pipeline_index(recipe.family))
    record = {
        "kind": MARKER_KIND,
        "family": recipe.family,
        "colours": list(COLOURS),
        "shapes": list(SHAPES),
        "size": SIZE,
        "caption": caption("{colour}", "{shape}"),
        "judge": JUDGE_WEIGHTS,
        "judge_from": None if judge_from is None else Path(judge_from).name,
        "judge_held_out_accuracy": round(judge_accuracy, 4),
        "recipe": asdict(recipe),
        "minutes_asked": minutes,
        "seconds_taken": round(time.monotonic() - started, 1),
        "torch": torch.__version__,
    }
    (out / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} in {record['seconds_taken']} s", flush=True)
    return record


def pipeline_index(family: str) -> dict[str, object]:
    """The family's ``model_index.json`` with the previews' sampler. The SDXL world was trained
    with empty captions, not zeroed embeddings, for guidance, so its pipeline must encode an empty
    negative prompt as the trainer's previews do (``force_zeros_for_empty_prompt`` off)."""
    sampler = {"scheduler": ["diffusers", "DPMSolverMultistepScheduler"]}
    if family == "sdxl":
        return {**SDXL_PIPELINE_INDEX, **sampler, "force_zeros_for_empty_prompt": False}
    return {**PIPELINE_INDEX, **sampler}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.pretrain",
        description="Pretrain a world model (SD-1 or SDXL layout) and its judge from scratch on this CPU.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the model to")
    parser.add_argument("--family", choices=FAMILIES, default="sd1",
                        help="the pipeline layout: SD-1 (one text encoder) or SDXL (two, pooled text and time ids)")
    parser.add_argument("--judge-from", type=Path, default=None,
                        help="reuse this judge.safetensors instead of training one (default for sdxl: the "
                             "SD-1 world's judge, so both models are read by the same judge)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=55.0,
                        help="wall-clock budget for the whole command, split between the phases")
    parser.add_argument("--images", type=int, default=Recipe.images, help="pictures rendered once")
    parser.add_argument("--batch", type=int, default=Recipe.batch)
    for name in ("judge", "vae", "unet"):
        parser.add_argument(f"--{name}-steps", type=int, default=None,
                            help=f"planned {name} steps (repeats a run); by default planned from --minutes")
        parser.add_argument(f"--{name}-stop", type=int, default=None,
                            help=f"stop the {name} phase after this many of its planned steps (repeats a "
                                 "run that ran out of time)")
    parser.add_argument("--threads", type=int, default=Recipe.threads)
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be above 0; pass how long the pretraining may take, e.g. --minutes 50")
    judge_from = args.judge_from
    if judge_from is None and args.family == "sdxl":
        judge_from = WORLD_MODEL / JUDGE_WEIGHTS
    recipe = Recipe(family=args.family, seed=args.seed, images=args.images, batch=args.batch, threads=args.threads,
                    **{f"{name}_{kind}": getattr(args, f"{name}_{kind}") for name in ("judge", "vae", "unet")
                       for kind in ("steps", "stop")})
    pretrain(args.out, recipe, args.minutes, judge_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())
