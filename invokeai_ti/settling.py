"""When the fixed evaluation batch's score has settled, and which step to pick then.

The score (``training.evaluation``) falls while the vectors find the concept and then flattens;
past that point more steps mostly fit the photos' accidents. The score has settled at an
evaluation when its lowest value so far improved, over the last ``WINDOW`` evaluations, by less
than ``SHARE`` of all the improvement made since the start. The running lowest value is used
rather than the last one so that one noisy evaluation neither settles a run nor unsettles it.

The step to pick is then the evaluation with the lowest score up to there: the vectors that fit
the photos best before more steps stopped helping. Only evaluations up to the settling are used,
so a running trainer can stop there (``--stop_when_settled``) and the report, reading the
finished run, names the same steps.

It imports nothing of torch, so the report can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WINDOW = 2
SHARE = 0.1
# The fewest scores in which the score can be seen to settle: the first ``WINDOW`` after step 0's
# hold all the gain so far, so they can never have gained under a share of it.
MIN_SCORES = WINDOW + 2


def scores_in(total_steps: int, every: int) -> int:
    """How many times a run of ``total_steps`` scores the batch: at step 0, every ``every`` steps
    and at its last step."""
    return total_steps // every + 1 + (1 if total_steps % every else 0)


def too_few_scores(total_steps: int, every: int) -> str:
    """Why a run does not score the batch, and the interval that would, as the start of a sentence."""
    found = scores_in(total_steps, every)
    advice = (f"; --validation_steps {total_steps // (MIN_SCORES - 1)} scores it {MIN_SCORES} times"
              if total_steps >= MIN_SCORES - 1 else "")
    return (f"The fixed evaluation batch is not scored: {found} scores (every {every} of {total_steps} steps) "
            f"are too few to show where it settles{advice}")


@dataclass(frozen=True)
class Settled:
    # The evaluation at which the score was seen to have settled (where --stop_when_settled stops).
    step: int
    # The step with the lowest score up to then: the snapshot to pick.
    best: int


def settled(history: Sequence[tuple[int, float]], window: int = WINDOW, share: float = SHARE) -> Settled | None:
    """The first settling in ``(step, score)`` pairs given in step order, or None."""
    lowest: list[float] = []
    for _, score in history:
        lowest.append(min(score, lowest[-1]) if lowest else score)
    for k in range(window, len(history)):
        gained = history[0][1] - lowest[k]
        if gained > 0 and lowest[k - window] - lowest[k] < share * gained:
            best = min(history[: k + 1], key=lambda point: point[1])[0]
            return Settled(history[k][0], best)
    return None
