"""Where each trainer's milliseconds go: a clock on the parts both trainers call, for bench.py --phases.

Installed in the child process before either trainer runs, it wraps the library calls both make
(the VAE's encoder, the text encoder's and the UNet's forward, ``Tensor.backward``, the optimizer
step, their progress bars), the data each reads (our ``Samples.batch``, the example's DataLoader)
and our own evaluation and logging, and records when each ran. Neither trainer's code is touched.

- Backward is one call; it is split where the gradient reaches the text encoder's output (a
  tensor hook there), so the UNet's part and the text encoder's part are told apart.
- The example restores its frozen vocabulary rows inline after ``optimizer.zero_grad()``, in no
  call of its own: its time is the gap from the end of ``zero_grad`` to the progress bar's update
  that follows it, where the example does nothing else.
- Only the outermost timed call counts: the forward passes inside our evaluation are the
  evaluation's.

``breakdown`` turns the spans into milliseconds per step for each part (what no part claims is
"other": the trainers' own Python between the calls), and the run's one-off costs.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections import defaultdict

PER_STEP = (
    "data loading and augmentation",
    "VAE encoding",
    "text encoder forward",
    "UNet forward",
    "UNet backward",
    "text encoder backward",
    "optimizer",
    "vocabulary restore",
    "logging and progress",
)


class PhaseClock:
    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.depth = 0
        self.reached_text = None  # when the gradient reached the text encoder's output
        self.zero_grad_ended = None

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if self.depth:
                return original(*args, **kwargs)
            self.depth += 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                self.spans.append((label, started, time.perf_counter()))

        setattr(owner, name, timed)


def install(record: dict, trainer: str) -> None:
    """Wrap the parts; the spans and the steps' ends land in ``record`` (written with it at exit)."""
    import torch
    import tqdm
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
    from torch.utils.data.dataloader import _BaseDataLoaderIter
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    clock = PhaseClock()
    record["spans"] = clock.spans
    record["step_ends"] = step_ends = []
    record["perf_started"] = time.perf_counter()

    clock.wrap(AutoencoderKL, "encode", "VAE encoding")
    clock.wrap(UNet2DConditionModel, "forward", "UNet forward")
    clock.wrap(_BaseDataLoaderIter, "__next__", "data loading and augmentation")
    clock.wrap(tqdm.std.tqdm, "set_postfix", "logging and progress")
    clock.wrap(tqdm.std.tqdm, "update", "logging and progress")
    timed_update = tqdm.std.tqdm.update

    @functools.wraps(timed_update)
    def update(self, *args, **kwargs):
        if trainer == "example" and clock.zero_grad_ended is not None and not clock.depth:
            clock.spans.append(("vocabulary restore", clock.zero_grad_ended, time.perf_counter()))
        clock.zero_grad_ended = None
        return timed_update(self, *args, **kwargs)

    tqdm.std.tqdm.update = update

    for encoder in (CLIPTextModel, CLIPTextModelWithProjection):
        original = encoder.forward

        @functools.wraps(original)
        def forward(self, *args, _original=original, **kwargs):
            started = time.perf_counter()
            outer = not clock.depth
            clock.depth += 1
            try:
                output = _original(self, *args, **kwargs)
            finally:
                clock.depth -= 1
            if outer:
                clock.spans.append(("text encoder forward", started, time.perf_counter()))
            hidden = output[0]
            if outer and torch.is_grad_enabled() and hidden.requires_grad:
                hidden.register_hook(lambda grad: setattr(clock, "reached_text", time.perf_counter()))
            return output

        encoder.forward = forward

    original_backward = torch.Tensor.backward

    @functools.wraps(original_backward)
    def backward(self, *args, **kwargs):
        clock.reached_text = None
        started = time.perf_counter()
        try:
            return original_backward(self, *args, **kwargs)
        finally:
            ended = time.perf_counter()
            split = clock.reached_text or ended
            clock.spans.append(("UNet backward", started, split))
            clock.spans.append(("text encoder backward", split, ended))

    torch.Tensor.backward = backward

    starts: list[float] = []
    register_optimizer_step_pre_hook(lambda *_: starts.append(time.perf_counter()))

    def after_step(*_) -> None:
        ended = time.perf_counter()
        clock.spans.append(("optimizer", starts.pop(), ended))
        step_ends.append(ended)

    register_optimizer_step_post_hook(after_step)
    original_zero_grad = torch.optim.Optimizer.zero_grad

    @functools.wraps(original_zero_grad)
    def zero_grad(self, *args, **kwargs):
        try:
            return original_zero_grad(self, *args, **kwargs)
        finally:
            clock.zero_grad_ended = time.perf_counter()

    torch.optim.Optimizer.zero_grad = zero_grad

    if trainer != "ours":
        return
    from invokeai_ti.training import evaluation, loop, step, watch

    clock.wrap(step.Samples, "batch", "data loading and augmentation")
    clock.wrap(evaluation.FixedEvaluation, "score", "evaluation")
    clock.wrap(loop.TrainingLoop, "look", "logging and progress")
    clock.wrap(loop.TrainingLoop, "record_rows", "logging and progress")
    clock.wrap(watch.LearningWatch, "note", "logging and progress")


def breakdown(record: dict, warmup: int) -> dict:
    """Milliseconds per step of each part over the steps after ``warmup``, and the one-off costs."""
    ends = record["step_ends"]
    spans = [tuple(span) for span in record["spans"]]
    first, last = ends[max(0, warmup - 1)], ends[-1]
    steps = len(ends) - max(0, warmup - 1) - 1
    per_label: dict[str, float] = defaultdict(float)
    evaluations = [end - start for label, start, end in spans if label == "evaluation"]
    for label, start, end in spans:
        if label == "evaluation":
            continue
        overlap = min(end, last) - max(start, first)
        if overlap > 0:
            per_label[label] += overlap
    claimed = sum(per_label.values())
    in_window_evaluation = sum(
        max(0.0, min(end, last) - max(start, first)) for label, start, end in spans if label == "evaluation"
    )
    result = {label: 1000 * per_label.get(label, 0.0) / steps for label in PER_STEP}
    result["other (Python between the parts)"] = 1000 * (last - first - claimed - in_window_evaluation) / steps
    result["step"] = 1000 * (last - first - in_window_evaluation) / steps
    result["evaluations"] = len(evaluations)
    result["evaluation_ms"] = 1000 * statistics.median(evaluations) if evaluations else 0.0
    result["first_step_s"] = ends[0] - record["perf_started"]
    return result
