"""The output folder's one owner: the name of every file and folder a run writes there.

Writers (embeddings, checkpoints, the loss log, the report, previews, the lock, the exported
pipeline) and readers (resume, the report, the form's clean-up) take their names from here, so a
name is spelt once and "what is a leftover" cannot miss a file that a writer added. A model
family changes only how many embedding files a save writes: SDXL adds a second diffusers file for
its second text encoder. The number of vectors changes no name.

It imports nothing but the standard library (and ``errors``), so the form and the CLI can read it
cheaply.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import Problem, UserError
from ..files import clear_temporaries, link_message, temporary_name

EMBEDDING_NAME = "learned_embeds"
SECOND_ENCODER_SUFFIX = "_2"
INSTALLED_NAME = f"{EMBEDDING_NAME}.bin"
BACKUP_SUFFIX = ".previous"
# The embedding an install replaced, kept in the output folder rather than in InvokeAI's.
INSTALLED_BACKUP = f"{INSTALLED_NAME}{BACKUP_SUFFIX}"
# What earlier versions of this trainer installed beside learned_embeds.bin. InvokeAI 2.3 loads
# every file in the embeddings folder, so each of these registered the trigger a second time or
# printed a notice at every start.
LEGACY_INSTALLED_NAMES = (
    f"{EMBEDDING_NAME}.safetensors",
    f"{EMBEDDING_NAME}.safetensors{BACKUP_SUFFIX}",
    INSTALLED_BACKUP,
)
# The longest name a file may have on Linux, macOS and Windows file systems (bytes, or UTF-16 units).
NAME_MAX = 255
# A step number and a process id as long as any the trainer meets, for the longest name derived.
LONGEST_STEP = 10**12
LONGEST_PID = 2**22

SETTINGS_RECORD = "training_settings.json"
LOSS_LOG = "loss_log.csv"
LOSS_PLOT = "loss.svg"
NORM_LOG = "vector_norms.csv"
EVALUATION_LOG = "evaluation.csv"
REPORT = "report.html"
SAMPLES_DIR = "samples"
SAMPLE_NAME = re.compile(r"^step-(\d+)\.png$")
PIPELINE_DIR = "pipeline"
LOCK_NAME = ".training.lock"
OWNER_NAME = ".training.owner"

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# Where a new run moves every file of the run it replaces, and where earlier versions of this
# trainer moved only that run's checkpoints.
SET_ASIDE = "previous-run"
LEGACY_SET_ASIDE = "previous-run-checkpoints"
# Inside a checkpoint folder, beside the family's embedding files.
CHECKPOINT_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pt"
SCHEDULER_STATE = "scheduler.pt"
SCALER_STATE = "scaler.pt"


def steps_suffix(step: int | None) -> str:
    """``-steps-N`` for a snapshot written along the way, nothing for the final files."""
    return "" if step is None else f"-steps-{step}"


def invokeai_name(step: int | None = None) -> str:
    """The file InvokeAI reads (and the one installed), final or of a step; every family's."""
    return f"{EMBEDDING_NAME}{steps_suffix(step)}.bin"


def sample_name(step: int) -> str:
    return f"step-{step:06d}.png"


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def checkpoint_staging_name(step: int) -> str:
    """Where a checkpoint is written before it is renamed into place; never listed as one."""
    return f".{checkpoint_name(step)}.partial"


def own_files_problem(trigger: str) -> Problem | None:
    """A trigger whose files would not fit a file name, or would share a name with another file.

    The trigger names ``<trigger>.safetensors`` and its ``-steps-N`` snapshots beside files of
    fixed names (``learned_embeds_2-steps-500.safetensors``, ...); a trigger spelt like one of
    them would make two saves write one file. Every family's names are checked (SDXL's are the
    most), and case is ignored because macOS and Windows file systems ignore it. The longest name
    is a snapshot's temporary file at the longest step.
    """
    names = OutputLayout(Path(), trigger, encoders=2)
    longest = max(len(temporary_name(path.name, LONGEST_PID).encode()) for path in names.embeddings(LONGEST_STEP).all())
    if longest > NAME_MAX:
        return Problem(
            f"the trigger term '{trigger[:20]}...' is too long for the file names made from it; keep it "
            f"to at most {len(trigger.encode()) - (longest - NAME_MAX)} characters",
            "placeholder_token",
        )
    snapshot = names.embeddings(step=0)
    marker = steps_suffix(0)
    others = [path.name.rsplit(marker, 1) for path in (snapshot.invokeai, *snapshot.diffusers)]
    pattern = re.compile("|".join(rf"{re.escape(head)}(-steps-\d+)?{re.escape(tail)}" for head, tail in others),
                         re.IGNORECASE)
    if pattern.fullmatch(names.embeddings().single_file.name) is None:
        return None
    return Problem(f"the trigger term '{trigger}' is the name of the trainer's own files; choose another word",
                   "placeholder_token")


@dataclass(frozen=True)
class EmbeddingNames:
    """The files one save of one model family writes, by which tool reads them.

    ``diffusers`` holds one file per text encoder, in the family's encoder order.
    """

    invokeai: Path
    diffusers: tuple[Path, ...]
    single_file: Path

    def all(self) -> tuple[Path, ...]:
        return (self.invokeai, *self.diffusers, self.single_file)


@dataclass(frozen=True)
class OutputLayout:
    """One run's output folder: ``folder`` for the trigger ``trigger`` of a model with ``encoders``
    text encoders (1 for SD-1 and SD-2, 2 for SDXL)."""

    folder: Path
    trigger: str
    encoders: int = 1

    def embeddings(self, step: int | None = None) -> EmbeddingNames:
        """The final files, or with ``step`` the ``-steps-N`` snapshot written along the way."""
        where = self.folder
        steps = steps_suffix(step)
        seconds = ("", SECOND_ENCODER_SUFFIX)[: self.encoders]
        return EmbeddingNames(
            invokeai=where / invokeai_name(step),
            diffusers=tuple(where / f"{EMBEDDING_NAME}{second}{steps}.safetensors" for second in seconds),
            single_file=where / f"{self.trigger}{steps}.safetensors",
        )

    def snapshots(self) -> list[Path]:
        """The ``-steps-N`` snapshots in the folder, the final files never among them."""
        marker = steps_suffix(0)
        parts = [path.name.rsplit(marker, 1) for path in self.embeddings(step=0).all()]
        pattern = re.compile("|".join(rf"{re.escape(head)}-steps-\d+{re.escape(tail)}" for head, tail in parts))
        if not self.folder.is_dir():
            return []
        return sorted(path for path in self.folder.iterdir() if pattern.fullmatch(path.name))

    @property
    def settings_record(self) -> Path:
        return self.folder / SETTINGS_RECORD

    @property
    def loss_log(self) -> Path:
        return self.folder / LOSS_LOG

    @property
    def norm_log(self) -> Path:
        return self.folder / NORM_LOG

    @property
    def evaluation_log(self) -> Path:
        return self.folder / EVALUATION_LOG

    @property
    def loss_plot(self) -> Path:
        return self.folder / LOSS_PLOT

    @property
    def report(self) -> Path:
        return self.folder / REPORT

    @property
    def samples_dir(self) -> Path:
        return self.folder / SAMPLES_DIR

    def sample(self, step: int) -> Path:
        """The preview of ``step``."""
        return self.samples_dir / sample_name(step)

    def samples(self) -> dict[int, Path]:
        """The previews in the folder, by the step in their name."""
        found = {}
        for path in self.samples_dir.glob("step-*.png"):
            if (match := SAMPLE_NAME.match(path.name)) is not None:
                found[int(match.group(1))] = path
        return found

    @property
    def pipeline(self) -> Path:
        return self.folder / PIPELINE_DIR

    @property
    def set_aside(self) -> Path:
        return self.folder / SET_ASIDE

    def snapshot_steps(self) -> list[int]:
        """The steps whose InvokeAI snapshot (``learned_embeds-steps-N.bin``) is in the folder."""
        head, tail = self.embeddings(step=0).invokeai.name.rsplit(steps_suffix(0), 1)
        pattern = re.compile(rf"{re.escape(head)}-steps-(\d+){re.escape(tail)}")
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for path in self.folder.iterdir() if (m := pattern.fullmatch(path.name)))

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder: the one a run can be continued from."""
        found = []
        for path in self.folder.glob("checkpoint-*"):
            match = CHECKPOINT_PATTERN.match(path.name)
            if match and (path / CHECKPOINT_STATE).is_file():
                found.append((int(match.group(1)), path))
        return max(found)[1] if found else None

    def logs(self, logging_dir: Path) -> Path | None:
        """The run's log folder when it lies inside the output folder (and is not the folder)."""
        logs = logging_dir if logging_dir.is_absolute() else self.folder / logging_dir
        inside = logs.resolve().is_relative_to(self.folder.resolve())
        return logs if inside and logs.resolve() != self.folder.resolve() else None

    def leftovers(self, logging_dir: Path) -> list[Path]:
        """What "delete training logs and intermediate checkpoints" removes.

        Only this run's step snapshots, checkpoints but the last, loss log and logs: the last
        checkpoint, the only way to continue the run with more steps, the final embedding, its
        backup and the recorded settings stay, an earlier run set aside in ``previous-run/`` (whose
        checkpoints can still be resumed) is not this run's to delete, and nothing outside the
        folder (the installed embedding above all) is touched.
        """
        last = self.last_checkpoint()
        checkpoints = [path for path in self.folder.glob("checkpoint-*") if path != last]
        found = [*checkpoints, *self.snapshots(), self.loss_log, self.norm_log, self.evaluation_log,
                 self.logs(logging_dir)]
        return sorted(path for path in found if path is not None and path.exists())

    def refuse_links(self) -> None:
        """Refuse a folder holding a symbolic link where the run writes: in the folder itself and
        in its previews folder every name is the run's, and a link there (planted by anyone who
        can write in a shared folder) would make a write land wherever it points."""
        for folder in (self.folder, self.samples_dir):
            if folder.is_symlink():
                raise UserError(link_message(folder))
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.is_symlink():
                        raise UserError(link_message(path))

    def clear_killed_run(self) -> list[Path]:
        """Remove the temporary files and half-written checkpoints a killed run left; only while
        this run holds the folder's lock, when nothing else writes here."""
        removed = [*clear_temporaries(self.folder), *clear_temporaries(self.samples_dir)]
        for path in self.folder.glob(".checkpoint-*.partial"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def run_files(self, logging_dir: Path) -> list[Path]:
        """Every file and folder a run leaves in the output folder, an earlier run set aside
        included: what a new run moves out of its way. The lock, the installed embedding's
        backup and files the trainer never writes stay where they are."""
        if not self.folder.is_dir():
            return []
        names = {SETTINGS_RECORD, LOSS_LOG, LOSS_PLOT, NORM_LOG, EVALUATION_LOG, REPORT, SAMPLES_DIR, PIPELINE_DIR,
                 SET_ASIDE, LEGACY_SET_ASIDE}
        names |= {path.name for path in self.embeddings().all()}
        checkpoints = re.compile(r"^\.?checkpoint-\d+(\.partial)?$")
        found = [path for path in self.folder.iterdir() if path.name in names or checkpoints.match(path.name)]
        found += self.snapshots()
        if (logs := self.logs(logging_dir)) is not None and logs.exists():
            found.append(logs)
        return sorted(set(found))
