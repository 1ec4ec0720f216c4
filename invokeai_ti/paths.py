"""Where things live under an InvokeAI root, resolved the way InvokeAI resolves it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("~/invokeai")
ROOT_MARKERS = ("invokeai.init", "invokeai.yaml")


def resolve_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--root``, else ``$INVOKEAI_ROOT``, else an InvokeAI venv's parent, else ``~/invokeai``.

    The virtual-environment rule is InvokeAI's: its installer puts ``.venv`` inside the root, so a
    user who activated it expects that root without passing a flag.
    """
    if explicit:
        return Path(explicit).expanduser().resolve()
    if env := os.environ.get("INVOKEAI_ROOT"):
        return Path(env).expanduser().resolve()
    if venv := os.environ.get("VIRTUAL_ENV"):
        parent = Path(venv).expanduser().resolve().parent
        if any((parent / marker).exists() for marker in ROOT_MARKERS):
            return parent
    return DEFAULT_ROOT.expanduser().resolve()


# Where `invokeai-ti --demo` makes its root when no --root is given.
DEMO_ROOT = Path("~/invokeai-ti-demo")


@dataclass(frozen=True)
class RootLayout:
    """The folders of an InvokeAI root; each is created only when something is written there."""

    root: Path

    @property
    def models_yaml(self) -> Path:
        return self.root / "configs" / "models.yaml"

    @property
    def invokeai_yaml(self) -> Path:
        return self.root / "invokeai.yaml"

    @property
    def database(self) -> Path:
        """InvokeAI 4.x and later keep their models here (table ``models``), not in models.yaml."""
        return self.root / "databases" / "invokeai.db"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def training_data(self) -> Path:
        return self.root / "text-inversion-training-data"

    @property
    def training_output(self) -> Path:
        return self.root / "text-inversion-output"

    @property
    def preferences(self) -> Path:
        return self.training_output / "preferences.conf"

    def data_dir(self, trigger: str) -> Path:
        return self.training_data / trigger

    def output_dir(self, trigger: str) -> Path:
        return self.training_output / trigger

    def embedding_dir(self, trigger: str) -> Path:
        return self.embeddings / trigger


def compile_cache_dir() -> Path:
    """Where torch.compile keeps its kernels, so a second run starts in seconds, not minutes.

    The user's cache folder (``platformdirs``), unless ``TORCHINDUCTOR_CACHE_DIR`` already says
    otherwise.
    """
    from platformdirs import user_cache_dir

    folder = Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or Path(user_cache_dir("invokeai-ti")) / "torch-compile")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder
