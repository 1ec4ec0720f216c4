"""What one model is and what discovery found: ``ModelInfo``, a model as the list shows it with
what training needs to know up front, and ``ModelScan``, a root's models by every name that
finds them, with a sentence for each thing discovery skipped.

The ``SOURCE_*`` strings name where a model was found.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..bases import BASE_SDXL_REFINER, FORMAT_DIFFUSERS
from ..root_kind import RootKind

SOURCE_YAML = "models.yaml"
SOURCE_FOLDER = "models folder"
SOURCE_HUB = "hub cache"
SOURCE_GIVEN = "given"
SOURCE_DATABASE = "InvokeAI database"


@dataclass(frozen=True)
class ModelInfo:
    """A trainable model as the list shows it, with what training needs to know up front."""

    name: str
    location: str
    path: Path | None
    source: str
    base: str
    token_dim: int | None
    native_resolution: int
    prediction_type: str
    is_default: bool
    description: str = ""
    # SDXL's second text encoder (clip_g); ``token_dim`` is always the first one's (clip_l).
    token_dim_2: int | None = None
    # FORMAT_DIFFUSERS (a pipeline folder) or FORMAT_CHECKPOINT (one file in the original layout).
    format: str = FORMAT_DIFFUSERS
    # A checkpoint's weightless diffusers folder (the shipped one for its base, or --model_config),
    # which says each part's shape; None for a diffusers folder, which has its own.
    config: Path | None = None
    # Why this model cannot be trained, as a fragment after its name (``has the base flux ...``),
    # where its record says so before any file is read; empty for a model that may be trained.
    refusal: str = ""

    @property
    def token_dims(self) -> tuple[int, ...]:
        """The widths of the vectors one embedding for this model holds, one per text encoder."""
        return tuple(width for width in (self.token_dim, self.token_dim_2) if width is not None)

    @property
    def trainable(self) -> bool:
        return self.base != BASE_SDXL_REFINER and not self.refusal


@dataclass
class ModelScan:
    """Discovery's result, with a sentence for each thing it had to skip.

    Skipping instead of raising keeps ``--list-models`` and the form usable when one entry of a
    hand-edited models.yaml is broken; the notes let them say what was skipped and why.
    """

    models: list[ModelInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Which InvokeAI the root belongs to, which decides where its models are registered.
    kind: RootKind = RootKind.NEW
    # Every string that names a model (shown name, 3.x full key, names of its duplicates).
    names: dict[str, ModelInfo] = field(default_factory=dict, init=False)
    _by_folder: dict[str, ModelInfo] = field(default_factory=dict, init=False, repr=False)

    def add(self, model: ModelInfo, alternative_name: str) -> ModelInfo | None:
        """Keep the first model per folder; rename a later one whose name is already taken.

        The same folder is often both registered in models.yaml and present under models/ or in
        the hub cache; the models.yaml entry carries the name and description the user chose, and
        the duplicate's names (a repo id, say) still find it. Returns the model as listed, or None
        when it duplicates one listed before.
        """
        identity = str(model.path) if model.path is not None else model.location
        listed = None
        if (kept := self._by_folder.get(identity)) is None:
            if model.name in self.names:
                model = dataclasses.replace(model, name=alternative_name)
            kept = listed = self._by_folder[identity] = model
            self.models.append(model)
        for name in (model.name, alternative_name):
            self.names.setdefault(name, kept)
        return listed

    def lookup(self, spec: str) -> ModelInfo | None:
        """Exact name first, then case-insensitively, as users retype names from memory."""
        if spec in self.names:
            return self.names[spec]
        folded = spec.casefold()
        return next((model for name, model in self.names.items() if name.casefold() == folded), None)
