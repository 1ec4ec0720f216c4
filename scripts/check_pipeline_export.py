"""Load a ``--no-only_save_embeds`` export with the transformers you run it under, and say
whether every text-encoder weight arrived.

A text encoder whose file this transformers cannot name loads with its weights "missing" and
left random, without an error; run this in the consumer's own environment (InvokeAI 6.14 pins
transformers 5.5) to see that it does not happen:

    python scripts/check_pipeline_export.py <output>/pipeline
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import transformers


def main(pipeline: Path) -> int:
    index = json.loads((pipeline / "model_index.json").read_text(encoding="utf-8"))
    print(f"transformers {transformers.__version__}")
    failures = 0
    for part in ("text_encoder", "text_encoder_2"):
        if part not in index:
            continue
        kind = index[part][1]
        _model, info = getattr(transformers, kind).from_pretrained(str(pipeline / part), output_loading_info=True)
        missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
        print(f"{part} ({kind}): {len(missing)} weights missing, {len(unexpected)} unexpected")
        failures += bool(missing or unexpected)
    print("every weight loaded" if not failures else "some weights did not load: the export is unusable here")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
