"""When the fixed evaluation batch's score has settled: the step to pick, and where to stop.

The score (``training.evaluation``) falls fast while the vectors find the concept and then
flattens; past that point more steps mostly fit the photos' accidents. The score of step ``k`` has
settled when the last ``WINDOW`` evaluations together improved it by less than ``SHARE`` of all
the improvement made since the start. Only evaluations up to ``k`` are used, so a running
trainer can stop there (``--stop_when_settled``) and the report, reading the finished run,
marks the same step.

It imports nothing of torch, so the report can use it.
"""

from __future__ import annotations

from collections.abc import Sequence

WINDOW = 2
SHARE = 0.1


def settled_at(history: Sequence[tuple[int, float]], window: int = WINDOW, share: float = SHARE) -> int | None:
    """The first step whose score has settled, from ``(step, score)`` pairs in step order."""
    if not history:
        return None
    start = history[0][1]
    for k in range(window, len(history)):
        best = min(score for _, score in history[: k + 1])
        gained = start - best
        recent = history[k - window][1] - history[k][1]
        if gained > 0 and recent < share * gained:
            return history[k][0]
    return None
