"""Which noise levels train and how their losses weigh: the timestep range, min-SNR weighting and
the noise offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import Problem
from .fields import setting

# The timesteps of every Stable Diffusion scheduler (num_train_timesteps); a model with fewer
# trains up to its own number.
MAX_TIMESTEP = 1000
# A lowest timestep worth trying when the photos' grain or outlines crowd out the object: on the
# world model it taught the red circle that every timestep could not, and cost the cross's thin
# arms some of their editability (docs/benchmarks.md, "Inner detail").
SUGGESTED_MIN_TIMESTEP = 250


@dataclass
class TimestepSettings:
    """The noise levels trained and the loss's weighting (part of ``--help``'s training group)."""

    snr_gamma: float = setting(
        0.0,
        "min-SNR loss weighting with this gamma (5 is usual): easy, low-noise timesteps weigh "
        "less; for epsilon and v-prediction models; 0 is off",
        group="training", label="Min-SNR gamma (0 = off)",
    )
    noise_offset: float = setting(
        0.0,
        "add this much noise shared by each channel (0.05-0.1 is usual), so the model can learn "
        "very dark and very bright pictures; 0 is off",
        group="training", label="Noise offset",
    )
    min_timestep: int = setting(
        0,
        "train only on noise levels from this timestep up (0-999; kohya's name). 0, every level, "
        "as the diffusers example, kohya and OneTrainer: the nearly noise-free ones carry fine "
        f"detail and texture. {SUGGESTED_MIN_TIMESTEP} can help an object whose photos' grain or "
        "outlines the vector learns instead of the object, at some cost to its finest detail",
        group="training", label="Lowest timestep trained", slider=(0, 999),
    )
    max_timestep: int = setting(
        MAX_TIMESTEP,
        "train only on noise levels below this timestep (1-1000; kohya's name); 1000 is the "
        "noisiest a Stable Diffusion model knows",
        group="training", label="Timesteps trained below", slider=(1, 1000),
    )

    def timestep_problems(self) -> list[Problem]:
        found = []
        if not (math.isfinite(self.snr_gamma) and self.snr_gamma >= 0):
            found.append(Problem(
                f"the min-SNR gamma must be 0 (off) or a positive number such as 5, not {self.snr_gamma}",
                "snr_gamma"))
        if not (math.isfinite(self.noise_offset) and 0.0 <= self.noise_offset <= 1.0):
            found.append(Problem(f"the noise offset {self.noise_offset} is not between 0 and 1; use 0.05 or 0",
                                 "noise_offset"))
        if not 1 <= self.max_timestep <= MAX_TIMESTEP:
            found.append(Problem(f"--max_timestep {self.max_timestep} is not between 1 and {MAX_TIMESTEP}; "
                                 f"use {MAX_TIMESTEP}, the noisiest", "max_timestep"))
        elif not 0 <= self.min_timestep < self.max_timestep:
            found.append(Problem(
                f"--min_timestep {self.min_timestep} is not between 0 and --max_timestep {self.max_timestep}; "
                "give a lower one, such as 0 (every timestep)", "min_timestep"))
        return found
