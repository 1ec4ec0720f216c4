#!/usr/bin/env python
"""How fast one training step's compute is in each precision on this machine.

A full bf16 run of bench.py on a CPU without bf16 instructions takes too long to be practical
(every op is emulated, the VAE caching included), so this times just the work of one optimizer
step: the text encoder and UNet forward under autocast and the backward to the token embedding,
through the trainer's own ExtendedEmbedding, on the model bench.py builds. Usage:

    python benchmarks/precision_step.py --model-dir ~/.cache/invokeai-ti-bench/sd15-random \\
        --resolution 256 --precisions no,bf16 --steps 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def time_steps(model_dir: Path, resolution: int, precision: str, steps: int) -> list[float]:
    from invokeai_ti.quiet import quiet_imports, quiet_library_progress
    from invokeai_ti.training import ExtendedEmbedding

    with quiet_imports():
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

    with quiet_library_progress():
        unet = UNet2DConditionModel.from_pretrained(str(model_dir), subfolder="unet").requires_grad_(False)
        text_encoder = CLIPTextModel.from_pretrained(str(model_dir), subfolder="text_encoder").requires_grad_(False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is not None:
        unet.to(dtype)
        text_encoder.to(dtype)
    embedding = text_encoder.get_input_embeddings()
    vector = torch.nn.Parameter(torch.zeros(1, embedding.embedding_dim))
    text_encoder.set_input_embeddings(ExtendedEmbedding(embedding, vector))
    ids = torch.randint(0, embedding.num_embeddings, (1, 77))
    ids[0, 5] = embedding.num_embeddings
    latents = torch.randn(1, 4, resolution // 8, resolution // 8)
    timesteps = torch.tensor([500])
    autocast = torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)
    durations = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with autocast:
            hidden = text_encoder(ids)[0]
            prediction = unet(latents.to(hidden.dtype), timesteps, hidden).sample
        torch.nn.functional.mse_loss(prediction.float(), latents).backward()
        durations.append(time.perf_counter() - started)
    return durations[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--precisions", default="no,bf16")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    args = parser.parse_args()
    results = {}
    for precision in args.precisions.split(","):
        durations = time_steps(args.model_dir.expanduser(), args.resolution, precision, args.steps)
        results[precision] = statistics.median(durations)
        print(f"{precision}: median {results[precision]:.2f} s per step ({', '.join(f'{d:.2f}' for d in durations)})", flush=True)
    if "no" in results:
        for precision, seconds in results.items():
            if precision != "no":
                print(f"{precision} against fp32: {results['no'] / seconds:.2f}x the steps per second")


if __name__ == "__main__":
    main()
