"""Start and stop a real ``leadscore serve`` process on 127.0.0.1 for service tests and benchmarks.

The server runs as a subprocess in its own process group, so stopping it ends the BentoML
arbiter and its workers together. Only the processes this harness started are signalled,
by their process id (the group id equals the server's pid).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "True"}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    """A started server process, its address and the token clients must send."""

    process: subprocess.Popen[bytes]
    port: int
    token: str | None
    log_path: Path
    db_url: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def headers(self, token: str | None = None) -> dict[str, str]:
        """Return request headers with the server's bearer token (or ``token`` when given)."""
        value = token if token is not None else self.token
        return {"Authorization": f"Bearer {value}"} if value else {}

    def client(self, *, timeout: float = 120.0, token: str | None = None) -> httpx.Client:
        """Return an httpx client on the server's base URL that sends the bearer token."""
        return httpx.Client(base_url=self.base_url, headers=self.headers(token), timeout=timeout)

    def log_tail(self, lines: int = 60) -> str:
        """Return the last ``lines`` lines of the server's combined stdout and stderr."""
        if not self.log_path.exists():
            return "(no server log)"
        text = self.log_path.read_text("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def serve_command(arguments: Sequence[str], *, log_level: str = "INFO") -> list[str]:
    """Return the command line that runs ``leadscore --log-level LEVEL serve ARGUMENTS`` here.

    The interpreter runs the CLI's root group directly, so the command works whether or not
    the ``leadscore`` console script is installed.
    """
    launcher = "import sys; from leadscore.cli.main import cli; sys.exit(cli())"
    return [sys.executable, "-c", launcher, "--log-level", log_level, "serve", *arguments]


def start_server(
    *,
    tracking_uri: str,
    db_url: str,
    log_path: Path,
    token_file: Path | None = None,
    policy_file: Path | None = None,
    insecure: bool = False,
    workers: int = 1,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
    log_level: str = "INFO",
) -> RunningServer:
    """Start ``leadscore serve`` on 127.0.0.1 and return at once; call ``wait_until_ready`` next."""
    chosen_port = port if port is not None else free_port()
    arguments = [
        "--host",
        LOOPBACK,
        "--port",
        str(chosen_port),
        "--tracking-uri",
        tracking_uri,
        "--db",
        db_url,
        "--workers",
        str(workers),
        *extra_args,
    ]
    if token_file is not None:
        arguments += ["--token-file", str(token_file)]
    if policy_file is not None:
        arguments += ["--policy", str(policy_file)]
    if insecure:
        arguments.append("--insecure")
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("LEADSCORE_")},
        **QUIET_ENV,
        "PYTHONPATH": str(REPO_ROOT),
        **(environment or {}),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            serve_command(arguments, log_level=log_level),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    token = token_file.read_text("utf-8").splitlines()[0].strip() if token_file is not None else None
    return RunningServer(process=process, port=chosen_port, token=token, log_path=log_path, db_url=db_url)


def wait_until_ready(server: RunningServer, *, timeout: float = 180.0) -> float:
    """Poll GET /readyz until it returns 200; return the seconds waited.

    Raises RuntimeError with the server log when the process exits or the time runs out.
    """
    started = time.monotonic()
    deadline = started + timeout
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"leadscore serve exited with status {server.process.returncode} before it was ready; "
                    f"log:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.5)
    raise RuntimeError(f"leadscore serve was not ready after {timeout:.0f} s; log:\n{server.log_tail()}")


def stop_server(server: RunningServer, *, timeout: float = 30.0) -> int | None:
    """Stop the server with SIGTERM to its process group (SIGKILL after ``timeout``); return its status."""
    process = server.process
    if process.poll() is not None:
        return process.returncode
    group = process.pid  # start_new_session=True made the server the leader of its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        return process.wait(timeout=10)


@contextlib.contextmanager
def running_server(**options: object) -> Iterator[RunningServer]:
    """Start a server, wait until it is ready, yield it and stop it on exit."""
    server = start_server(**options)  # type: ignore[arg-type]
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop_server(server)


def wait_for_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Return the exit status once ``process`` ends, or None when it runs past ``timeout`` seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
