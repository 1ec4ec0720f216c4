"""A small client of InvokeAI 4.x-7.x's REST API: what registering an embedding needs, no more.

Since 4.0 InvokeAI watches no folder: an embedding exists for it only once its model manager has
registered it, and a running server is the one safe way in (its database is in WAL mode and owned
by that process). Only the standard library speaks HTTP here, so the trainer gains no dependency.
Every failure is a ``UserError`` of one sentence; ``NotAnswering`` is told apart because then the
embedding is added by hand in InvokeAI instead.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .settings.outputs import DEFAULT_INVOKEAI_URL, PASSWORD_VARIABLE, TOKEN_VARIABLE

# A local server answers in milliseconds; the probe must not hold up a run when none is there.
PROBE_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 60.0
# Probing an embedding takes InvokeAI well under a second; a busy server may queue the job.
JOB_TIMEOUT_S = 300.0
JOB_POLL_S = 0.25
FINISHED = ("completed", "error", "cancelled")
# How a server with multiuser off refuses a sign-in: its routes need none, so none is made.
SINGLE_USER = "Multiuser mode is disabled"
SIGN_IN_HINT = (
    f"pass --invokeai_token (or set {TOKEN_VARIABLE}) with an administrator's token, or "
    f"--invokeai_email with the password in {PASSWORD_VARIABLE} (the form has fields for both)"
)


class InvokeAIError(UserError):
    """InvokeAI refused, or answered what an embedding's registration cannot use."""


class NotAnswering(InvokeAIError):
    """Nothing answers at the address: InvokeAI is not running there."""


class SignInNeeded(InvokeAIError):
    """The server wants an administrator (``multiuser`` on) and has none signed in."""


@dataclass
class InvokeAIClient:
    url: str = DEFAULT_INVOKEAI_URL
    token: str | None = None

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    def call(self, method: str, path: str, what: str, body: Any = None, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        """The decoded answer; any failure is one sentence naming ``what`` was asked."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            raise self.refusal(error.code, detail_of(error.read()), what) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise NotAnswering(f"nothing answers at {self.url} ({reason}); start InvokeAI, or pass "
                               "--invokeai_url with the address its web page has") from None
        except ValueError:
            raise InvokeAIError(f"--invokeai_url {self.url} is not a web address; write it as "
                                f"{DEFAULT_INVOKEAI_URL}") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise InvokeAIError(f"{self.url} answered {what} with something other than InvokeAI's "
                                "JSON; check that --invokeai_url is InvokeAI's address") from None

    def refusal(self, status: int, detail: str, what: str) -> InvokeAIError:
        if status == 401:
            if self.token:
                return SignInNeeded(f"InvokeAI at {self.url} refused the sign-in token for {what} "
                                    f"(it may have expired); {SIGN_IN_HINT}")
            return SignInNeeded(f"InvokeAI at {self.url} asks to sign in for {what}; {SIGN_IN_HINT}")
        if status == 403:
            return SignInNeeded(f"InvokeAI at {self.url} refused {what} ({detail}); sign in as an "
                                "administrator of that InvokeAI")
        if status == 404:
            return InvokeAIError(f"{self.url} answered {what} with 404 ({detail}); check that "
                                 "--invokeai_url is an InvokeAI 4.0 or later")
        return InvokeAIError(f"InvokeAI at {self.url} refused {what} with {status} ({detail})")

    def version(self) -> str:
        """The probe: answers quickly whether InvokeAI runs at the address, and which."""
        answer = self.call("GET", "/api/v1/app/version", "its version", timeout=PROBE_TIMEOUT_S)
        if not isinstance(answer, dict) or "version" not in answer:
            raise InvokeAIError(f"{self.url} does not answer as InvokeAI does; check --invokeai_url")
        return str(answer["version"])

    def sign_in(self, email: str, password: str) -> str:
        """Sign in and keep the token for the calls that follow (none on a single-user server).
        The password goes to the server only; it appears in no message, so a refusal never
        repeats it."""
        try:
            answer = self.call("POST", "/api/v1/auth/login", "signing in",
                               {"email": email, "password": password, "remember_me": False})
        except SignInNeeded as error:
            if SINGLE_USER in str(error):
                return ""
            raise SignInNeeded(
                f"InvokeAI at {self.url} refused the email {email} and its password; check both "
                f"(the password is read from {PASSWORD_VARIABLE} or the form's password field)"
            ) from error
        self.token = str(answer["token"])
        return self.token

    def embeddings_named(self, name: str) -> list[dict]:
        query = urllib.parse.urlencode({"model_type": "embedding", "model_name": name})
        answer = self.call("GET", f"/api/v2/models/?{query}", f"the list of embeddings named {name}")
        return list(answer.get("models", [])) if isinstance(answer, dict) else []

    def install(self, source: Path, name: str) -> dict:
        """Install ``source`` in place (6.9+ otherwise moves the user's file into its models
        folder) and follow the job to its end; returns the finished job."""
        query = urllib.parse.urlencode({"source": str(source), "inplace": "true"})
        what = f"the install of {source}"
        job = self.call("POST", f"/api/v2/models/install?{query}", what, {"name": name})
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while job.get("status") not in FINISHED:
            if time.monotonic() > deadline:
                raise InvokeAIError(f"InvokeAI at {self.url} did not finish {what} within "
                                    f"{JOB_TIMEOUT_S:.0f} s; see its Model Manager")
            time.sleep(JOB_POLL_S)
            job = self.call("GET", f"/api/v2/models/install/{job['id']}", what)
        if job["status"] != "completed":
            reason = job.get("error_reason") or job.get("error") or job["status"]
            raise InvokeAIError(f"InvokeAI at {self.url} could not install {source} ({first_line(reason)})")
        return job

    def delete(self, key: str, what: str) -> None:
        self.call("DELETE", f"/api/v2/models/i/{urllib.parse.quote(key)}", what)


def detail_of(raw: bytes) -> str:
    """FastAPI's ``detail``, one line of it; the raw text when there is none."""
    try:
        detail = json.loads(raw).get("detail", raw.decode(errors="replace"))
    except (ValueError, AttributeError):
        detail = raw.decode(errors="replace")
    if isinstance(detail, list):
        detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return first_line(str(detail)) or "no reason given"


def first_line(text: str) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip().rstrip(".") if lines else ""
