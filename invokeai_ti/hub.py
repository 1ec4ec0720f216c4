"""Whether the Hugging Face hub can be reached now, asked in seconds.

A name that is not a folder on disk (``--tokenizer_name openai/clip-vit-large-patch14``) makes
transformers ask the hub; on a machine that cannot reach it, huggingface_hub retries each file
for minutes before it gives up. One short request answers the question first, so an offline
machine hears in seconds what is missing, and a connected one downloads as users expect.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

PROBE_SECONDS = 3.0
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached, as a fragment ("HF_HUB_OFFLINE is set"); None when it answers.

    Any HTTP answer counts as reachable: only a connection that fails or times out does not.
    """
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().upper() in TRUE_VALUES:
            return f"{variable} is set"
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=PROBE_SECONDS):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return f"the Hugging Face hub ({endpoint()}) cannot be reached ({reason})"
