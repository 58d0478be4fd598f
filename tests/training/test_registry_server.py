"""Training registers and serving loads the champion through an MLflow tracking server.

The server is a real ``mlflow server`` process on a free loopback port with its own SQLite
store and artifact folder, so the REST registry checks run as they do in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.model_loading import load_champion
from tests.serving.service_model import train_tiny_champion
from training.registry import logged_model_id
from training.tracking import display_uri

STARTUP_SECONDS = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_health(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    pytest.fail(
        f"mlflow server did not answer /health within {STARTUP_SECONDS:.0f} s: {log.read_text()[-2000:]}"
    )


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = root / "server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def test_logged_model_id_from_uri() -> None:
    assert logged_model_id("models:/m-0123abcd") == "m-0123abcd"
    assert logged_model_id("models:/lead-scorer@champion") is None
    assert logged_model_id("models:/lead-scorer/3") is None
    assert logged_model_id("runs:/abc/model") is None


def test_train_and_load_through_server(tracking_server: str, tmp_path: Path) -> None:
    champion = train_tiny_champion(tmp_path, leads=800, tracking_uri=tracking_server)

    loaded = load_champion(tracking_server)

    assert champion.registry_version == "1"
    assert loaded.bundle.bundle_version == champion.model_version


def test_display_uri_hides_password() -> None:
    assert (
        display_uri("postgresql+psycopg://bob:secret@db:5432/mlflow")
        == "postgresql+psycopg://bob:***@db:5432/mlflow"
    )
    assert display_uri("https://bob:secret@mlflow.internal") == "https://bob:***@mlflow.internal"
    assert (
        display_uri("postgresql+psycopg://postgres@127.0.0.1/test")
        == "postgresql+psycopg://postgres@127.0.0.1/test"
    )
    assert display_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
