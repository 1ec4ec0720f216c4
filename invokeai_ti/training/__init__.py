"""Training a Textual Inversion embedding, one module per job.

``trainer`` runs a whole training, phase by phase; ``loading`` brings in the model's parts and
hands back the ``LoadedModel``, ``family`` says what differs between model families, ``tokens``
adds the trigger's vectors, ``latents`` caches the images' latents, ``plan`` draws every sample
from the seed, ``run`` is what every part of one run shares (``Run``), ``state`` is what an
optimizer step changes, ``step`` is one optimizer step's passes, ``loop`` runs the steps and saves
along the way, ``previews`` draws the preview pictures, ``waiting`` holds the other processes while
the main one works alone, and ``guard`` turns interruptions and failures into sentences without
losing work. The step, the previews and the loop are each built from the ``LoadedModel`` and the
``Run``.
"""

from .latents import LatentCache
from .tokens import ExtendedEmbedding, new_tokens, token_problems
from .trainer import Notify, Trainer, TrainingResult

__all__ = [
    "ExtendedEmbedding",
    "LatentCache",
    "Notify",
    "Trainer",
    "TrainingResult",
    "new_tokens",
    "token_problems",
]
