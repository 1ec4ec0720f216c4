"""The real InvokeAI server for tests and scripts: found, started on a temporary root, stopped.

Proof that InvokeAI sees our files comes only from InvokeAI's own code, so these tests run the
real ``invokeai-web`` (built by scripts/invokeai_env.sh) instead of a stand-in for its API. The
environment is ``$INVOKEAI_ENV``, else ``.invokeai-env/`` in the checkout; without it the tests
that need a server skip and say how to build it.

A script uses it as::

    from tests.invokeai_server import running_server
    with running_server(root, multiuser=False) as server:
        server.install(folder)
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV_VARIABLE = "INVOKEAI_ENV"
DEFAULT_ENV = REPO / ".invokeai-env"
STANDINS = Path(__file__).resolve().parent / "invokeai_standins"
# Scripts run by the InvokeAI environment's own Python, to see our files through its code.
SCRIPTS = Path(__file__).resolve().parent / "invokeai_scripts"

# Seen 40-60 s on two idle cores; a machine shared with other test processes needs more.
START_TIMEOUT_S = 420.0
STOP_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 120.0

# invokeai.yaml's format of InvokeAI 4.0 (6.14.2 migrates it to 4.0.3 at start-up).
CONFIG_SCHEMA = "4.0.2"

# The first admin of a multiuser server; InvokeAI's own checks refuse a weak password or an
# address it cannot validate.
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "Tr41ning-Embeddings-Locally!"


def find_environment() -> Path | None:
    """The InvokeAI environment's folder, when it holds an ``invokeai-web`` to start."""
    configured = os.environ.get(ENV_VARIABLE)
    env = Path(configured).expanduser() if configured else DEFAULT_ENV
    return env if (env / "bin" / "invokeai-web").is_file() else None


def missing_reason() -> str:
    where = os.environ.get(ENV_VARIABLE) or str(DEFAULT_ENV)
    return (
        f"the real InvokeAI server is not installed in {where}; build it with "
        f"scripts/invokeai_env.sh (or point {ENV_VARIABLE} at an environment holding invokeai-web)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerError(RuntimeError):
    """The server did not start, or answered a test's request with an error status."""


@dataclass
class InvokeAIServer:
    """A running ``invokeai-web`` on its own root and port, and a small raw client for tests.

    The raw client is the tests' own view of the API, independent of invokeai_ti's client, so a
    test can check what the server holds after invokeai_ti talked to it.
    """

    root: Path
    port: int
    multiuser: bool
    process: subprocess.Popen
    log: Path
    token: str | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """(status, decoded JSON or None); uses the admin's token when none is given."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token or self.token:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.request(method, path, body)
        if status >= 400:
            raise ServerError(f"{method} {path} answered {status}: {answer}")
        return answer

    def install(self, source: Path, inplace: bool = True, overrides: dict | None = None) -> dict:
        """Install ``source`` through the model manager and return the finished job."""
        query = urllib.parse.urlencode({"source": str(source), "inplace": str(inplace).lower()})
        job = self.ok("POST", f"/api/v2/models/install?{query}", overrides or {})
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while job["status"] not in ("completed", "error", "cancelled"):
            if time.monotonic() > deadline:
                raise ServerError(f"the install of {source} did not finish: {job}")
            time.sleep(0.2)
            job = self.ok("GET", f"/api/v2/models/install/{job['id']}")
        return job

    def models(self, model_type: str | None = None) -> list[dict]:
        query = f"?model_type={model_type}" if model_type else ""
        return self.ok("GET", f"/api/v2/models/{query}")["models"]

    def sign_in_admin(self) -> str:
        """Make the first admin of a fresh multiuser server (or reuse it) and sign in as it."""
        self.request("POST", "/api/v1/auth/setup",
                     {"email": ADMIN_EMAIL, "display_name": "Admin", "password": ADMIN_PASSWORD})
        status, answer = self.request("POST", "/api/v1/auth/login",
                                      {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        if status != 200:
            raise ServerError(f"signing in as {ADMIN_EMAIL} answered {status}: {answer}")
        return answer["token"]

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Stop this server's own process, never anything found by name."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(root: Path, port: int, multiuser: bool) -> None:
    """InvokeAI has no --port flag: host and port come from the root's invokeai.yaml. It refuses
    a file without a schema version, and migrates an older one to its own at start-up."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"schema_version: {CONFIG_SCHEMA}", "host: 127.0.0.1", f"port: {port}", f"multiuser: {'true' if multiuser else 'false'}"]
    (root / "invokeai.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def server_environment() -> dict[str, str]:
    """The stand-in torchvision first on the server's path, and nothing of the test's own path
    (this checkout has a ``tools`` package of its own) or of a developer's InvokeAI."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "INVOKEAI_ROOT")}
    env.update(PYTHONPATH=str(STANDINS), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", NO_COLOR="1")
    return env


def stop_with_parent() -> None:
    """On Linux, the server gets SIGTERM when the process that started it dies, so a test run
    killed by a timeout leaves no server behind (the fixture's own stop covers every other end)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(root: Path, multiuser: bool = False, timeout_s: float = START_TIMEOUT_S) -> InvokeAIServer:
    """Start ``invokeai-web`` on ``root`` (created and migrated by InvokeAI when new) on a free
    port, and wait until it answers; a multiuser server comes back signed in as its admin."""
    env_dir = find_environment()
    if env_dir is None:
        raise ServerError(missing_reason())
    port = free_port()
    write_config(root, port, multiuser)
    log = root / "invokeai-web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(env_dir / "bin" / "invokeai-web"), "--root", str(root)],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=server_environment(), cwd=root, preexec_fn=stop_with_parent,
        )
    server = InvokeAIServer(root, port, multiuser, process, log)
    try:
        wait_until_up(server, timeout_s)
        if multiuser:
            server.token = server.sign_in_admin()
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_up(server: InvokeAIServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(f"invokeai-web exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(server.url + "/api/v1/app/version", timeout=5) as answer:
                if answer.status == 200:
                    return
        time.sleep(1)
    raise ServerError(f"invokeai-web did not answer within {timeout_s:.0f} s:\n{server.log_tail()}")


def run_invokeai_script(name: str, *args: object) -> str:
    """Run ``tests/invokeai_scripts/<name>`` with the InvokeAI environment's Python; its stdout."""
    env_dir = find_environment()
    if env_dir is None:
        raise ServerError(missing_reason())
    done = subprocess.run(
        [str(env_dir / "bin" / "python"), str(SCRIPTS / name), *map(str, args)],
        env=server_environment(), capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        raise ServerError(f"{name} failed with {done.returncode}:\n{done.stderr[-4000:]}")
    return done.stdout


@contextlib.contextmanager
def running_server(root: Path, multiuser: bool = False) -> Iterator[InvokeAIServer]:
    server = start_server(root, multiuser)
    try:
        yield server
    finally:
        server.stop()


def _server_fixture(tmp_path_factory: pytest.TempPathFactory, multiuser: bool) -> Iterator[InvokeAIServer]:
    if find_environment() is None:
        pytest.skip(missing_reason())
    root = tmp_path_factory.mktemp("invokeai-multiuser" if multiuser else "invokeai-root")
    with running_server(root, multiuser) as server:
        yield server


@pytest.fixture(scope="module")
def invokeai_server(tmp_path_factory) -> Iterator[InvokeAIServer]:
    """A single-user server, started once for the test module that asks for it."""
    yield from _server_fixture(tmp_path_factory, multiuser=False)


@pytest.fixture(scope="module")
def invokeai_multiuser_server(tmp_path_factory) -> Iterator[InvokeAIServer]:
    """A server with ``multiuser: true``: its model routes want an admin's token (``.token``)."""
    yield from _server_fixture(tmp_path_factory, multiuser=True)
