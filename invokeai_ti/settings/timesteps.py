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
# Where an object trains from by default: on the world model's photos the timesteps below it
# taught outlines and shading instead of the object (docs/benchmarks.md, "Learning what users
# care about").
OBJECT_MIN_TIMESTEP = 250


def default_min_timestep(learnable_property: str) -> int:
    return OBJECT_MIN_TIMESTEP if learnable_property == "object" else 0


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
    min_timestep: int | None = setting(
        None,
        "train only on noise levels from this timestep up (0-999; kohya's name). The nearly "
        "noise-free ones below it ask the vector for the photos' fine detail (outlines, grain, "
        f"shading) rather than the object (default: {OBJECT_MIN_TIMESTEP} for an object, measured on "
        "the world model; 0 for a style, whose texture is that detail)",
        group="training", label="Lowest timestep trained", slider=(0, 999),
    )
    max_timestep: int = setting(
        MAX_TIMESTEP,
        "train only on noise levels below this timestep (1-1000; kohya's name); 1000 is the "
        "noisiest a Stable Diffusion model knows",
        group="training", label="Timesteps trained below", slider=(1, 1000),
    )

    def timestep_problems(self, lowest_timestep: int) -> list[Problem]:
        """``lowest_timestep`` is ``--min_timestep`` or, when it is not given, the learnable property's."""
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
        elif not 0 <= lowest_timestep < self.max_timestep:
            found.append(Problem(
                f"--min_timestep {lowest_timestep} is not between 0 and --max_timestep {self.max_timestep}; "
                f"give a lower one, such as {OBJECT_MIN_TIMESTEP}", "min_timestep"))
        return found
