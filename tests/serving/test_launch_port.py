"""leadscore serve checks its port before anything slow starts."""

from __future__ import annotations

import socket

import pytest

from leadscore.errors import ConfigError
from serving.launch import require_free_port


def test_busy_port_named_with_fix() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(
            ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{port} .*choose another one with --port"
        ):
            require_free_port("127.0.0.1", port)


def test_free_port_accepted() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    require_free_port("127.0.0.1", port)
