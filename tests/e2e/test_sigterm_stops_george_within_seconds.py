"""SIGTERM stops George within 10 s, even while its Git remote never answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.running import free_port

pytestmark = pytest.mark.slow


def test_sigterm_stops_george_while_its_remote_never_answers(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = silent.accept()
            except OSError:
                return
            held.append(conn)  # read nothing, answer nothing
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GEORGE_", "ANTHROPIC_"))}
    env |= {"GEORGE_REPO": f"http://127.0.0.1:{silent.getsockname()[1]}/ops.git",
            "GEORGE_HOME": str(tmp_path / "home"), "PORT": str(free_port()),
            "GEORGE_LOCAL_SLACK_PORT": str(free_port())}
    george = subprocess.Popen([sys.executable, "-m", "georgebot", "run"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert connected.wait(30), "George never reached its remote"
        george.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, err = george.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        george.kill()
        silent.close()
        for conn in held:
            conn.close()
    assert took < 10, f"SIGTERM took {took:.1f}s\n{err}"
    assert "Traceback" not in err, err
    assert "stopped before the first Git sync" in err
