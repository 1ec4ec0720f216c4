"""Setting a run up from its data folder: the pictures read and checked, the bucket step chosen
and said, and how many steps the run takes. A mixin of ``Trainer``, which holds the settings,
the model's name and ``notify``."""

from __future__ import annotations

import math

from ..data.buckets import step_with_buckets
from ..data.folder import TrainingData, read_training_data
from ..errors import UserError


class DataSetup:
    """The data-folder half of setting a ``Trainer`` up."""

    def training_data(self) -> TrainingData:
        """The data folder read and checked, captions, masks and buckets included."""
        s = self.settings
        return read_training_data(
            self.data_dir, trigger=s.trigger, resolution=s.resolution, bucket=s.bucket,
            bucket_step=self.bucket_step, masked_loss=s.masked_loss,
        )

    def _read_data(self, main: bool, multiple: int) -> TrainingData:
        data = self.training_data()
        if main:
            for path, reason in data.scan.skipped:
                self.notify(f"Skipping {path.name}: {reason}.")
            if (note := self._bucket_note(data, multiple)) is not None:
                self.notify(note)
            if (summary := data.summary()) is not None:
                self.notify(summary)
        return data

    def _take_a_bucket_step_with_buckets(self, multiple: int) -> None:
        """A bucket step too coarse for the resolution leaves only the square; a finer one the
        model takes is trained with instead. The step asked for stays the setting (a resume with
        the same flags makes the same choice, and every checkpoint made before still resumes);
        each picture's bucket is in the checkpoints' data record, the step used in the settings
        record for the report."""
        s = self.settings
        if s.bucket and (step := step_with_buckets(s.resolution, s.bucket_reso_steps, multiple)) is not None:
            self.bucket_step = step

    def _bucket_note(self, data: TrainingData, multiple: int) -> str | None:
        """One line when buckets do not do what the step asked for, said only where it changes
        how some picture trains."""
        s, resolution = self.settings, self.settings.resolution
        fits = [image.fit for image in data.images if image.fit is not None]
        if self.bucket_step != s.bucket_reso_steps and any(f.bucket.width != f.bucket.height for f in fits):
            return (
                f"Buckets: a step of {s.bucket_reso_steps} px leaves only the {resolution}x{resolution} bucket "
                f"at {resolution} px, so pictures train with a step of {self.bucket_step} px, the largest "
                f"that keeps their shapes (--bucket_reso_steps sets it)."
            )
        if s.bucket and any(f.scaled_width != f.scaled_height for f in fits) and all(
                f.bucket.width == f.bucket.height for f in fits):
            return (
                f"Every picture trains square at {resolution} px: {self.model.name} takes sides in steps "
                f"of {multiple} px, too coarse for buckets at this size (train at a higher "
                "--resolution to keep the pictures' shapes)."
            )
        return None

    def _check_bucket_sides(self, data: TrainingData, multiple: int) -> None:
        """A side the UNet cannot halve as often as it downsamples fails deep inside it; say so first."""
        sides = sorted({side for image in data.images if image.fit is not None
                        for side in (image.fit.bucket.width, image.fit.bucket.height)})
        odd = [side for side in sides if side % multiple]
        if odd:
            raise UserError(
                f"The bucket step {self.bucket_step} gives {odd[0]}-pixel sides, but "
                f"{self.model.name} needs sides in multiples of {multiple}; use --bucket_reso_steps "
                f"{multiple} (or --no-bucket)."
            )

    def _total_steps(self, images: int, samples_per_step: int) -> int:
        s = self.settings
        if s.num_train_epochs:
            return s.num_train_epochs * math.ceil(images * s.repeats / samples_per_step)
        return s.max_train_steps
