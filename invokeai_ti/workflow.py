"""From settings to an installed embedding: the steps the CLI and the form share.

Both front ends call ``plan_run`` (every check that can fail before loading a model, reported
together) and then ``run_plan``; neither has a private path to training, so they cannot drift.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from .data.captions import caption_problem
from .data.images import data_folder_problem
from .device import DeviceCaps, detect
from .errors import Problem, UserError, sentences
from .models import FORMAT_CHECKPOINT, ModelInfo, find_model
from .outputs.embeddings import install_embedding
from .outputs.family_files import files_for
from .outputs.layout import INSTALLED_BACKUP, INSTALLED_NAME, OutputLayout, own_files_problem
from .outputs.report import write_report
from .outputs.run_result import last_step, result_step
from .outputs.step_files import install_command
from .paths import RootLayout, resolve_root
from .quiet import quiet_imports
from .registration import after_install, registration_problem
from .settings import TrainingSettings, trigger_problem
from .training import Notify, Trainer, TrainingResult, new_tokens, token_problems
from .training.family import family_for
from .training.loading import PartLoader
from .training.previews import Verdict


@dataclass(frozen=True)
class RunPlan:
    """Settings with every default filled in, and the folders and model they point at."""

    settings: TrainingSettings
    layout: RootLayout
    model: ModelInfo
    data_dir: Path
    output_dir: Path


@dataclass(frozen=True)
class RunOutcome:
    result: TrainingResult
    installed: Path | None
    # What the root's InvokeAI was told (a registration, an autoimport copy), as sentences.
    notes: tuple[str, ...] = ()


def folder_write_problem(folder: Path, what: str = "the output folder", field: str = "output_dir",
                         fix: str = "choose a folder you can write to") -> Problem | None:
    """Try to write in ``folder``: permissions alone lie for root and on read-only mounts.

    Folders created for the test are removed again, so a rejected form leaves nothing behind.
    """
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    probe = folder / f".write-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return Problem(f"{what} {folder} cannot be written ({reason}); {fix}", field)
    finally:
        for created in missing:
            with contextlib.suppress(OSError):
                created.rmdir()
    return None


def tracker_problem(report_to: str) -> Problem | None:
    """``--report_to`` names a logger that must be installed; say which package is missing."""
    with quiet_imports():
        from accelerate.utils import is_tensorboard_available, is_wandb_available

    wanted = {"tensorboard": ["tensorboard"], "wandb": ["wandb"], "all": ["tensorboard", "wandb"]}
    available = {"tensorboard": is_tensorboard_available(), "wandb": is_wandb_available()}
    missing = [name for name in wanted.get(report_to, []) if not available[name]]
    if missing:
        return Problem(
            f"--report_to {report_to} needs {' and '.join(missing)}, which is not installed; "
            f"pip install {' '.join(missing)}, or leave --report_to out (loss_log.csv is always written)",
            "report_to",
        )
    return None


def tokenizer_problems(model: ModelInfo, settings: TrainingSettings) -> list[Problem]:
    """Trigger and initializer checks against each of the model's tokenizers, loaded as the
    trainer loads them but without any weights; SDXL's two usually agree, and a problem both have
    is reported once."""
    tokens = new_tokens(settings.token, settings.num_vectors)
    loader = PartLoader(model, settings.tokenizer_name)
    problems: list[Problem] = []
    for slot in family_for(model).encoders:
        try:
            tokenizer = loader.tokenizer(slot.tokenizer)
        except UserError as error:
            found = [Problem(str(error), "tokenizer_name" if settings.tokenizer_name else "model")]
        else:
            found = token_problems(tokenizer, tokens, settings.initializer_token)
        problems.extend(problem for problem in found if problem not in problems)
    return problems


def check_run(settings: TrainingSettings, caps: DeviceCaps | None = None) -> tuple[RunPlan | None, list[Problem]]:
    """Resolve defaults and find every problem checkable before any weights are loaded.

    Returns the plan (None when the model or root cannot be resolved) and the problems, each with
    the setting that fixes it; the form lists them all in one popup and puts the cursor on the
    first one's field, the CLI prints them and exits.
    """
    problems = settings.problems()
    if trigger_problem(settings.placeholder_token) is None:
        if (problem := own_files_problem(settings.trigger)) is not None:
            problems.insert(0, problem)
    caps = caps or detect()
    layout = RootLayout(resolve_root(settings.root))
    try:
        model = find_model(settings.model, layout, settings.revision, settings.model_config)
    except UserError as error:
        # A checkpoint's shape problem is fixed in --model_config, any other in --model.
        field = "model_config" if "--model_config" in str(error) else "model"
        return None, problems + [Problem(str(error), field)]
    plan = resolved_plan(settings, caps, layout, model)
    found = [*device_problems(plan, caps), *folder_problems(plan), *model_problems(plan, settings)]
    if not problems and not found and (problem := registration_problem(settings, layout)) is not None:
        found.append(problem)
    return plan, problems + found


def resolved_plan(settings: TrainingSettings, caps: DeviceCaps, layout: RootLayout, model: ModelInfo) -> RunPlan:
    """The settings with the device's, the root's and the model's defaults filled in."""
    resolved = settings.resolve_device_defaults(caps, model.base)
    resolved = dataclasses.replace(
        resolved,
        root=layout.root,
        model=model.name if model.source != "given" else model.location,
        resolution=resolved.resolution or model.native_resolution,
    )
    trigger = settings.trigger or "untitled"
    data_dir = (settings.train_data_dir or layout.data_dir(trigger)).expanduser()
    output_dir = (settings.output_dir or layout.output_dir(trigger)).expanduser()
    return RunPlan(resolved, layout, model, data_dir, output_dir)


def device_problems(plan: RunPlan, caps: DeviceCaps) -> list[Problem]:
    """What this machine cannot do of what the settings ask."""
    found = [tracker_problem(plan.settings.report_to), caps.precision_problem(plan.settings.mixed_precision)]
    if plan.settings.enable_xformers_memory_efficient_attention and not caps.xformers:
        found.insert(0, Problem(
            f"xFormers acceleration cannot be used here ({caps.xformers_reason}); untick 'Use "
            "xformers acceleration' or leave out --enable_xformers_memory_efficient_attention",
            "enable_xformers_memory_efficient_attention",
        ))
    return [problem for problem in found if problem is not None]


def folder_problems(plan: RunPlan) -> list[Problem]:
    """The data folder (its pictures and captions) and the output folder."""
    found = []
    trigger, layout, data_dir = plan.settings.trigger, plan.layout, plan.data_dir
    # Without a trigger the default data folder is the parent of every trigger's folder: the
    # trigger is what is missing (said already), not images in that parent.
    if trigger or data_dir not in (layout.training_data, layout.data_dir("untitled")):
        found.append(data_folder_problem(data_dir))
        if found[-1] is None and trigger:
            found.append(caption_problem(data_dir, trigger))
    found.append(folder_write_problem(plan.output_dir))
    if trigger:
        # Found after the whole training otherwise, when the embedding is installed.
        found.append(folder_write_problem(
            layout.embedding_dir(trigger), "the embeddings folder", "root",
            "make it writable, or pass the --root of an InvokeAI you can write to",
        ))
    return [problem for problem in found if problem is not None]


def model_problems(plan: RunPlan, settings: TrainingSettings) -> list[Problem]:
    """The trigger and initializer against the model's tokenizers and files, and the embedding
    to start from against its token widths."""
    found: list[Problem | None] = []
    if trigger_problem(settings.placeholder_token) is None:
        found.append(files_for(plan.model).trigger_problem(settings.placeholder_token))
        if settings.initializer_token.strip():
            found.extend(tokenizer_problems(plan.model, plan.settings))
    found.append(initial_embedding_problem(settings.initial_embedding, plan.model))
    if plan.model.format == FORMAT_CHECKPOINT and not settings.only_save_embeds:
        found.append(Problem(
            f"--no-only_save_embeds copies the diffusers folder a run trained on, and {plan.model.name} is a "
            "single-file checkpoint; leave it out and load the embedding with the checkpoint",
            "only_save_embeds",
        ))
    return [problem for problem in found if problem is not None]


def initial_embedding_problem(path: Path | None, model: ModelInfo) -> Problem | None:
    """Read ``--initial_embedding`` against the model's token widths from its configs, so a file
    for the other kind of model (SDXL for SD-1, or the other way round) is refused with the other
    problems instead of after the weights have loaded."""
    if path is None or not model.token_dims:
        return None
    try:
        files_for(model).read_initial(path, model.token_dims, model.name)
    except UserError as error:
        return Problem(str(error), "initial_embedding")
    return None


def plan_run(settings: TrainingSettings, caps: DeviceCaps | None = None) -> RunPlan:
    """``check_run`` for callers that stop at the first report: any problem is a UserError."""
    plan, problems = check_run(settings, caps)
    if problems or plan is None:
        raise UserError(sentences(problems))
    return plan


def preview_verdict(plan: RunPlan) -> Verdict | None:
    """On the world model the judge says what each preview shows; no other model has a judge,
    and only this check (a file or two read) touches the world's room for them."""
    from .world import is_world_model

    if plan.settings.previews_off or plan.model.path is None or not is_world_model(plan.model.path):
        return None
    from .world.verdict import ConceptVerdict

    return ConceptVerdict.of_photos(plan.data_dir, plan.settings.resolution, plan.settings.center_crop)


def run_plan(plan: RunPlan, *, notify: Notify = print, show_progress: bool | None = None) -> RunOutcome:
    """Train and install. Progress bars are drawn only on a terminal (``show_progress`` None): in
    a redirected log they would be a screenful of carriage returns per step."""
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    trainer = Trainer(
        plan.settings,
        plan.model,
        plan.data_dir,
        plan.output_dir,
        notify=notify,
        show_progress=show_progress,
        preview_verdict=preview_verdict(plan),
    )
    result = trainer.run()
    installed = None
    notes: list[str] = []
    if result.main_process:
        files = files_for(plan.model)
        installed = files.install(
            result.output_dir, plan.layout.embedding_dir(plan.settings.trigger), plan.settings.token
        )
        write_report(files.output_layout(result.output_dir, plan.settings.token))
        notes = after_install(plan.settings, plan.layout, plan.model.base, installed)
    return RunOutcome(result, installed, tuple(notes))


def header_line(plan: RunPlan) -> str:
    """What is about to happen, printed by every front end before anything loads."""
    return (
        f"Training {plan.settings.token} on {plan.model.name} with the images in {plan.data_dir} "
        "(Ctrl-C stops and keeps a checkpoint to resume from)."
    )


def end_lines(plan: RunPlan, outcome: RunOutcome) -> list[str]:
    """What every front end prints when a run has ended: what was trained and where its files are,
    then where the embedding was installed (the main process only: it is the one that installs)."""
    if outcome.installed is None:
        return []
    result = outcome.result
    lines = [f"Trained {result.token} for {result.steps} steps; the training files are in {plan.output_dir}."]
    if result.result_step == result.steps:
        return [*lines, installed_message(outcome.installed, result.token), *outcome.notes]
    other = install_command({"placeholder_token": plan.settings.trigger, "root": str(plan.layout.root)},
                            plan.output_dir, result.steps)
    return [
        *lines,
        installed_message(outcome.installed, result.token, result.result_step),
        f"It scored best where the evaluation score settled, so --stop_when_settled installed it rather than "
        f"the last step ({result.steps}); {other} installs the last one, or any step of the report with its number.",
        *outcome.notes,
    ]


def installed_message(installed: Path, token: str, step: int | None = None) -> str:
    """The one sentence every front end prints after installing, so "installed" reads one way."""
    what = "The embedding" if step is None else f"The embedding of step {step}"
    return f"{what} is installed at {installed}; type {token} in your prompts to use it."


def final_step(outputs: OutputLayout) -> int | None:
    """The step the final ``learned_embeds.bin`` holds, when it exists: the last step's, or with
    --stop_when_settled the best-scored one (``outputs.run_result``)."""
    if not outputs.embeddings().invokeai.is_file():
        return None
    return result_step(outputs)


def steps_to_install(outputs: OutputLayout) -> list[int]:
    """Every step of this run whose embedding can be installed: the snapshots and the final one.

    A new run moves an earlier run's files aside, so the folder holds one run's snapshots; one
    beyond the last step trained can only be left from a run in a folder an older version shared,
    and is another run's, never offered.
    """
    final = final_step(outputs)
    last = last_step(outputs) if final is not None else None
    snapshots = [step for step in outputs.snapshot_steps() if last is None or step <= last]
    return sorted(set(snapshots) | ({final} if final is not None else set()))


def describe_steps(outputs: OutputLayout) -> str:
    final = final_step(outputs)
    last = last_step(outputs) if final is not None else None
    named = {last: "the last one", final: "the run's result"} if final != last else {final: "the final one"}
    return ", ".join(f"{step} ({named[step]})" if step in named else str(step) for step in steps_to_install(outputs))


@dataclass(frozen=True)
class StepInstalled:
    installed: Path
    output_dir: Path
    replaced: bool
    notes: tuple[str, ...] = ()

    def message(self, token: str, step: int) -> str:
        text = installed_message(self.installed, token, step)
        if self.replaced:
            text += f" The embedding it replaced is kept as {self.output_dir / INSTALLED_BACKUP}."
        return " ".join((text, *self.notes))


def install_step(settings: TrainingSettings, step: int) -> StepInstalled:
    """Install the snapshot of ``step`` exactly as the final embedding is installed: the file it
    replaces is kept as ``<output>/learned_embeds.bin.previous``, as after training."""
    if not settings.trigger:
        raise UserError(
            "--install-step needs the trigger of the run; add --placeholder_token with it, "
            "for example --placeholder_token psychedelic."
        )
    layout = RootLayout(resolve_root(settings.root))
    output_dir = (settings.output_dir or layout.output_dir(settings.trigger)).expanduser()
    outputs = OutputLayout(output_dir, settings.trigger)
    available = steps_to_install(outputs)
    if not available:
        raise UserError(
            f"{output_dir} holds no trained embedding of {settings.token}; train it first, or pass "
            "the --output_dir of the run."
        )
    if step not in available:
        raise UserError(
            f"{output_dir} has no embedding of step {step}; the steps saved there are "
            f"{describe_steps(outputs)}: pass one of them to --install-step."
        )
    source = None if step == final_step(outputs) else step
    embedding_dir = layout.embedding_dir(settings.trigger)
    replaced = (embedding_dir / INSTALLED_NAME).is_file()
    installed = install_embedding(output_dir, embedding_dir, source)
    write_report(outputs)
    notes = after_install(settings, layout, None, installed)
    return StepInstalled(installed, output_dir, replaced, tuple(notes))
