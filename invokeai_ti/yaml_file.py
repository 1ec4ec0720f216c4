"""Reading the YAML files a user or another program keeps under a root: one reader for all.

models.yaml, invokeai.yaml and the saved preferences are edited by hand and written by other
programs, so each is untrusted. Everything goes through ``read_yaml`` so that one place decides
how YAML is parsed (the safe loader only: no tag ever builds a Python object) and how a file that
cannot be read is named in the sentence the user sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    """A YAML file that could not be read; ``str()`` names the file and the reason in one line."""


def read_yaml(path: Path) -> Any:
    """The parsed content of ``path`` (None for an empty file), or ``YamlFileError``."""
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise YamlFileError(f"{path} could not be read ({reason})") from error
