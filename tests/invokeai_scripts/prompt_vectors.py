"""Run by the InvokeAI environment's Python: what InvokeAI's own prompt path makes of a prompt.

Arguments: the root, the model's base (sd-1 ...), a diffusers model folder (its tokenizer and
text encoder) and the prompt. It follows compel's invocation in InvokeAI 6.x: the prompt's
``<name>`` triggers (``extract_ti_triggers_from_prompt``), each looked up by name, base and type
in the root's model records as ``load_by_attrs`` does (more than one is InvokeAI's "more than one
similarly-named" failure), read by InvokeAI's embedding loader, applied with
``ModelPatcher.apply_ti``; then the prompt's token ids, expanded by InvokeAI's textual inversion
manager, are looked up in the patched text encoder. Prints JSON: the records found per trigger
and the rows of the prompt's new tokens.
"""

import json
import logging
import sys
from pathlib import Path

from transformers import CLIPTextModel, CLIPTokenizer

from invokeai.app.services.model_records.model_records_sql import ModelRecordServiceSQL
from invokeai.app.services.shared.sqlite.sqlite_database import SqliteDatabase
from invokeai.app.util.ti_utils import extract_ti_triggers_from_prompt
from invokeai.backend.model_manager.taxonomy import BaseModelType, ModelFormat, ModelType
from invokeai.backend.model_patcher import ModelPatcher
from invokeai.backend.textual_inversion import TextualInversionModelRaw

root, base, model, prompt = Path(sys.argv[1]), BaseModelType(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
logger = logging.getLogger("prompt_vectors")
records = ModelRecordServiceSQL(SqliteDatabase(root / "databases" / "invokeai.db", logger), logger)
found, ti_list = {}, []
for trigger in extract_ti_triggers_from_prompt(prompt):
    name = trigger[1:-1]
    configs = records.search_by_attr(model_name=name, base_model=base, model_type=ModelType.TextualInversion)
    found[name] = len(configs)
    if len(configs) == 1:
        config = configs[0]
        path = Path(config.path)
        path = path if path.is_absolute() else root / "models" / path
        if config.format == ModelFormat.EmbeddingFolder:
            path = path / "learned_embeds.bin"
        ti_list.append((name, TextualInversionModelRaw.from_checkpoint(path)))

tokenizer = CLIPTokenizer.from_pretrained(model / "tokenizer")
text_encoder = CLIPTextModel.from_pretrained(model / "text_encoder")
with ModelPatcher.apply_ti(tokenizer, text_encoder, ti_list) as (patched, manager):
    ids = patched(prompt, truncation=False, add_special_tokens=False).input_ids
    ids = manager.expand_textual_inversion_token_ids_if_necessary(ids)
    rows = text_encoder.get_input_embeddings().weight
    new = [i for i in ids if i >= len(tokenizer)]
    print(json.dumps({"records": found, "rows": [rows[i].tolist() for i in new]}))
