"""Evaluation and previews: the preview images made during training, how often, from which seed,
and stopping once the fixed evaluation batch's score has settled.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Problem
from .fields import setting


@dataclass
class PreviewSettings:
    """The previews and the evaluation that scores the run (``--help``'s previews group)."""

    validation_prompt: tuple[str, ...] | None = setting(
        None,
        "prompt of the preview images made during training, a row of pictures each; give it several "
        "times for several rows; {} stands for the trigger (default: the trigger alone, such as 'a "
        "photo of a <trigger>', and in a context, such as 'a photo of a <trigger> on a table'); "
        "'none' turns previews off",
        group="previews",
        label="Previews (p1 | p2; none=off)",
        metavar="PROMPT",
    )
    num_validation_images: int = setting(4, "images of each preview prompt", group="previews")
    validation_steps: int | None = setting(
        None,
        "make a preview every N optimizer steps, and one before the first (default: --save_steps, "
        "so each preview has its learned_embeds-steps-N file, or half of a shorter run)",
        group="previews",
        label="Preview every N steps",
        slider=(10, 2000),
    )
    validation_seed: int | None = setting(
        None,
        "seed of the previews' starting noise, the same for every preview so they differ only "
        "by what was learned (default: the run's seed)",
        group="previews",
    )
    stop_when_settled: bool = setting(
        False,
        "end the run at the step where the fixed evaluation batch's score settled (scored every "
        "--validation_steps) and install the step that scored best up to there; the last step's "
        "files keep their step name (--install-step N installs any step)",
        group="previews", label="Stop when the evaluation score settles",
    )

    def __post_init__(self) -> None:
        # One prompt given as text (the way InvokeAI and older preferences hold it) is a row too.
        if isinstance(self.validation_prompt, str):
            self.validation_prompt = (self.validation_prompt,)
        elif self.validation_prompt is not None:
            self.validation_prompt = tuple(self.validation_prompt)

    @property
    def preview_prompts(self) -> tuple[str, ...]:
        """The prompts as given, blank ones left out (empty: the default ones)."""
        return tuple(prompt.strip() for prompt in self.validation_prompt or () if prompt.strip())

    @property
    def previews_off(self) -> bool:
        return any(prompt.lower() == "none" for prompt in self.preview_prompts)

    def preview_prompt_problem(self, trigger: str) -> Problem | None:
        """A preview prompt without the trigger shows nothing of what is being learned.

        The bare word would not do either: the tokenizer splits ``psychedelic`` into pieces and
        only ``<psychedelic>`` is the trained token.
        """
        if self.previews_off or not trigger:
            return None
        token = f"<{trigger}>"
        for prompt in self.preview_prompts:
            if "{}" not in prompt and token not in prompt:
                return Problem(
                    f"the preview prompt '{prompt}' does not contain the trigger {token}; write it "
                    f"in, or {{}} in its place, or use 'none' to turn previews off",
                    "validation_prompt",
                )
        return None
