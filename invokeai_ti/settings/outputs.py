"""What a run leaves behind and where it goes: the InvokeAI 4.x-7.x server that registers the
embedding (with its sign-in), the checkpoints and embeddings saved on the way, and the trackers
that also log the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Problem
from .fields import setting

# Where InvokeAI's web server listens unless its invokeai.yaml says otherwise.
DEFAULT_INVOKEAI_URL = "http://127.0.0.1:9090"
# Sign-in secrets may come from the environment, so they never need to be typed on a command line.
TOKEN_VARIABLE = "INVOKEAI_TOKEN"
PASSWORD_VARIABLE = "INVOKEAI_PASSWORD"


@dataclass
class InvokeAISettings:
    """InvokeAI 4.x-7.x: the running server that registers the embedding."""

    invokeai_url: str = setting(
        DEFAULT_INVOKEAI_URL,
        "the running InvokeAI 4.x-7.x that registers the embedding after training, as its web page's "
        "address (used for a 4.x-7.x root; when nothing answers there, the end of the run says how "
        "to add it in InvokeAI)",
        group="invokeai", label="InvokeAI web address",
    )
    invokeai_token: str | None = setting(
        None,
        f"an administrator's sign-in token for an InvokeAI with multiuser on (default: ${TOKEN_VARIABLE})",
        group="invokeai", secret=True, metavar="TOKEN",
    )
    invokeai_email: str | None = setting(
        None,
        f"sign in to an InvokeAI with multiuser on as this administrator; the password is read from "
        f"${PASSWORD_VARIABLE} (never from a flag, never saved)",
        group="invokeai", label="InvokeAI sign-in email", metavar="EMAIL",
    )
    invokeai_password: str | None = setting(
        None, f"the sign-in password (${PASSWORD_VARIABLE}, or the form's hidden field)",
        group="invokeai", label="InvokeAI password", secret=True, flag=False,
    )

    def server_problem(self) -> Problem | None:
        if not self.invokeai_url.strip().lower().startswith(("http://", "https://")):
            return Problem(f"the InvokeAI web address '{self.invokeai_url}' is not a web address; write it "
                           f"as {DEFAULT_INVOKEAI_URL}", "invokeai_url")
        return None


def secret_environment(settings: InvokeAISettings) -> dict[str, str]:
    """The sign-in secrets as the environment variables a child ``invokeai-ti`` reads them from."""
    found = {TOKEN_VARIABLE: settings.invokeai_token, PASSWORD_VARIABLE: settings.invokeai_password}
    return {name: value for name, value in found.items() if value}


@dataclass
class CheckpointSettings:
    """The checkpoints and embedding files saved while training."""

    checkpointing_steps: int = setting(
        500, "save a resumable checkpoint every N optimizer steps", group="checkpoints"
    )
    checkpoints_total_limit: int | None = setting(
        3, "keep only the newest N checkpoints (0 keeps all)", group="checkpoints"
    )
    resume_from_checkpoint: str | None = setting(
        None, "a checkpoint folder, or 'latest' for the newest one in the output folder",
        group="checkpoints", label="Resume from last saved checkpoint",
    )
    save_steps: int = setting(
        500, "write learned_embeds-steps-N every N optimizer steps", group="checkpoints"
    )
    only_save_embeds: bool = setting(
        True, "save only the embedding; --no-only_save_embeds also writes <output>/pipeline, a full diffusers pipeline that knows the trigger",
        group="checkpoints",
    )


@dataclass
class TrackerSettings:
    """Where else the run is logged (the last of ``--help``'s training group)."""

    report_to: str = setting(
        "none", "also log to tensorboard or wandb when installed", group="training",
        choices=("none", "tensorboard", "wandb", "all"),
    )
