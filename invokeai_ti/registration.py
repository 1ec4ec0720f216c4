"""After the embedding is installed under the root: what each kind of InvokeAI needs to use it.

InvokeAI 2.3 loads ``<root>/embeddings/`` at start-up, so the installed file is all it needs.
3.x imports only its autoimport folder at start-up, so the file is copied there too. 4.x and
later watch no folder at all: the running server's model manager registers the installed folder
in place, which keeps ``<root>/embeddings/<trigger>/`` the one copy InvokeAI reads (a new run
replaces the file there, never the output folder a new run moves aside) and makes the folder's
name, the trigger, the name prompts use.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import Problem, UserError
from .files import atomic_write
from .invokeai_api import InvokeAIClient, InvokeAIError, NotAnswering
from .models import BASE_SD1, BASE_SD2, BASE_SDXL
from .paths import RootLayout
from .root_kind import RootKind, detect_root_kind, invokeai_setting
from .settings import PASSWORD_VARIABLE, TOKEN_VARIABLE, TrainingSettings, invokeai_trigger_problem

# InvokeAI's names of the bases this trainer trains for.
INVOKEAI_BASES = {BASE_SD1: "sd-1", BASE_SD2: "sd-2", BASE_SDXL: "sdxl"}
DEFAULT_AUTOIMPORT = "autoimport"


def signed_in_client(settings: TrainingSettings) -> InvokeAIClient:
    """A client of ``--invokeai_url`` with the token given, or signed in with the email and the
    password (the settings', else the environment's: a secret need never be on a command line)."""
    token = settings.invokeai_token or os.environ.get(TOKEN_VARIABLE) or None
    client = InvokeAIClient(settings.invokeai_url.strip(), token)
    password = settings.invokeai_password or os.environ.get(PASSWORD_VARIABLE)
    if settings.invokeai_email and not token:
        if not password:
            raise UserError(f"--invokeai_email {settings.invokeai_email} needs its password in "
                            f"{PASSWORD_VARIABLE} (or the form's password field), or pass --invokeai_token instead")
        client.sign_in(settings.invokeai_email, password)
    return client


def registration_problem(settings: TrainingSettings, layout: RootLayout) -> Problem | None:
    """Before training, for a 4.x-7.x root: a trigger InvokeAI could not use, or a running server
    that would refuse the registration (a sign-in missing or refused), found now rather than
    after hours of training. No server answering is no problem: the end of the run says what to
    do in InvokeAI."""
    if detect_root_kind(layout.root) is not RootKind.INVOKEAI_4_PLUS:
        return None
    if (problem := invokeai_trigger_problem(settings.placeholder_token)) is not None:
        return problem
    try:
        client = signed_in_client(settings)
        client.version()
        client.embeddings_named(settings.trigger)
    except NotAnswering:
        return None
    except UserError as error:
        field = "invokeai_email" if settings.invokeai_email else "invokeai_url"
        return Problem(str(error), field)
    return None


def after_install(settings: TrainingSettings, layout: RootLayout, base: str | None, installed: Path) -> list[str]:
    """Make the installed embedding usable in the root's InvokeAI; the sentences to print.

    ``base`` is the trained model's (None when not known, as for ``--install-step``): InvokeAI's
    record must show the same.
    Nothing here may lose the trained file: a server's refusal becomes a sentence, and the file
    stays where it was installed.
    """
    kind = detect_root_kind(layout.root)
    if kind is RootKind.INVOKEAI_3:
        return [copy_to_autoimport(layout, settings.trigger, installed)]
    if kind is RootKind.INVOKEAI_4_PLUS:
        return [register_with_server(settings, INVOKEAI_BASES.get(base), installed.parent)]
    return []


def autoimport_folder(layout: RootLayout) -> Path:
    """``autoimport_dir`` of the root's invokeai.yaml, relative to the root unless absolute."""
    folder = Path(str(invokeai_setting(layout.root, "autoimport_dir") or DEFAULT_AUTOIMPORT)).expanduser()
    return folder if folder.is_absolute() else layout.root / folder


def copy_to_autoimport(layout: RootLayout, trigger: str, installed: Path) -> str:
    target = autoimport_folder(layout) / "embedding" / trigger / installed.name
    atomic_write(target, lambda tmp: shutil.copyfile(installed, tmp))
    return (f"InvokeAI 3.x imports it from {target.parent} when it starts: restart InvokeAI, then "
            f"type <{trigger}> in your prompts.")


@dataclass(frozen=True)
class Registered:
    """The record InvokeAI made, and those of the same name and base it replaced."""

    record: dict
    replaced: tuple[dict, ...]


def register_with_server(settings: TrainingSettings, base: str | None, folder: Path) -> str:
    """The sentence saying how the registration went, or what to do in InvokeAI by hand."""
    url = settings.invokeai_url.strip()
    try:
        client = signed_in_client(settings)
        client.version()
        done = register_embedding(client, folder, settings.trigger, base)
    except NotAnswering:
        return (f"Nothing answers at {url}, so InvokeAI has not registered the embedding yet: start "
                f"InvokeAI and, in its Model Manager, paste {folder} into Scan Folder, tick \"In place\" "
                f"and install {settings.trigger} (or run this again with --invokeai_url set to InvokeAI's "
                "address).")
    except UserError as error:
        return f"{error} The embedding stays in {folder}."
    replaced = " in place of the one registered before" if done.replaced else ""
    return (f"InvokeAI at {url} registered it as {done.record.get('base')} embedding "
            f"{done.record.get('name')}{replaced}: type <{settings.trigger}> in its prompts.")


def register_embedding(client: InvokeAIClient, folder: Path, name: str, base: str | None) -> Registered:
    """Register ``folder`` as the embedding ``name``, replacing any of that name and base.

    Since 6.9 a second embedding of one name and base installs, and then every prompt with the
    trigger fails ("More than one model found"), so there is never a second: a record of this
    folder is unregistered first (InvokeAI refuses the same path twice), others only once the
    new one is in. Unregistering deletes no file outside InvokeAI's models folder.
    """
    folder = folder.resolve()
    existing = [m for m in client.embeddings_named(name) if base is None or m.get("base") == base]
    here = [m for m in existing if same_path(m.get("path"), folder)]
    for record in here:
        client.delete(record["key"], f"unregistering the earlier {name}")
    job = client.install(folder, name)
    record = job.get("config_out") or {}
    if record.get("type") != "embedding" or record.get("base") in (None, "unknown") or (
        base is not None and record.get("base") != base
    ):
        if record.get("key"):
            client.delete(record["key"], f"unregistering the unusable {name}")
        expected = f"an {base} embedding" if base else "an embedding"
        raise InvokeAIError(
            f"InvokeAI could not read {folder} as {expected} (it found type {record.get('type')}, base "
            f"{record.get('base')}), so it was not left registered; InvokeAI knows embeddings of Stable "
            "Diffusion 1, 2 and XL models (token widths 768, 1024, and 768 with 1280)"
        )
    for old in existing:
        if old not in here:
            client.delete(old["key"], f"unregistering the earlier {name} at {old.get('path')}")
    return Registered(record, tuple(existing))


def same_path(recorded: object, folder: Path) -> bool:
    return isinstance(recorded, str) and Path(recorded).expanduser().resolve() == folder
