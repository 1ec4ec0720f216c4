"""Keep the libraries' chatter out of our users' terminal.

xFormers built for another torch prints a build-mismatch warning at import, transformers warns
about torchvision, and both libraries draw their own progress bars when loading or saving. None
of it concerns someone training an embedding; they see our progress display and our messages.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

NOISY_LOGGERS = ("xformers", "transformers", "diffusers", "accelerate", "huggingface_hub")


@contextlib.contextmanager
def quiet_imports() -> Iterator[None]:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield


@contextlib.contextmanager
def quiet_library_progress() -> Iterator[None]:
    """Hide the "Loading weights" / "Writing model shards" bars and warnings while it lasts."""
    with quiet_imports():
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
    transformers_logging.set_verbosity_error()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers_logging.enable_progress_bar()
        diffusers_logging.enable_progress_bar()
