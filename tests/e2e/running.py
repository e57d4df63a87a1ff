"""`georgebot run` as a real process with nothing configured, driven through the local
Slack's HTTP interface (`/local/api/...`), as a person at the page would: `page` loads the page
first and keeps its cookie, this start's token, which the local Slack requires."""

from __future__ import annotations

import http.cookiejar
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningGeorge:
    process: subprocess.Popen[str]
    slack_url: str
    lines: queue.Queue[str]
    stderr: list[str]
    readers: list[threading.Thread]
    page: urllib.request.OpenerDirector = field(default_factory=lambda: urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())))

    def open_page(self) -> None:
        """Loads the page as a browser does, which hands `page` the token in a cookie."""
        with self.page.open(f"{self.slack_url}/", timeout=5) as r:
            assert r.status == 200

    def state(self) -> dict[str, Any]:
        with self.page.open(f"{self.slack_url}/local/api/state", timeout=5) as r:
            return dict(json.load(r))

    def act(self, what: str, **body: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.slack_url}/local/api/{what}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with self.page.open(request, timeout=5) as r:
            return dict(json.load(r))

    def until(self, predicate: Callable[[dict[str, Any]], T | None], *, within: float = 30) -> T:
        """Polls the local Slack's state until `predicate` returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            found = predicate(self.state())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError("georgebot run exited:\n" + "".join(self.stderr))
            if time.monotonic() > deadline:
                raise AssertionError("not seen in time; stderr:\n" + "".join(self.stderr[-30:]))
            time.sleep(0.1)

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; returns the exit code once its output is read."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return code


def start_george(workdir: Path, home: Path) -> RunningGeorge:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GEORGE_", "ANTHROPIC_"))}
    slack_port = free_port()
    env |= {"PORT": str(free_port()), "GEORGE_LOCAL_SLACK_PORT": str(slack_port),
            "GEORGE_HOME": str(home), "GEORGE_RECONCILE_SECONDS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "georgebot", "run"], cwd=workdir, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout, process.stderr
    readers = [threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True),
               threading.Thread(target=lambda: [stderr.append(x) for x in err], daemon=True)]
    for reader in readers:
        reader.start()
    running = RunningGeorge(process, f"http://127.0.0.1:{slack_port}", lines, stderr, readers)
    try:
        first = lines.get(timeout=60)
    except queue.Empty:
        process.kill()
        running.stop()
        raise AssertionError("georgebot run said nothing; stderr:\n" + "".join(stderr)) from None
    assert f"http://127.0.0.1:{slack_port}" in first, first
    running.open_page()
    return running


def channel(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in state["channels"] if c["name"] == name.lstrip("#"))


def message_with(state: dict[str, Any], name: str, text: str) -> dict[str, Any] | None:
    return next((m for m in channel(state, name)["messages"] if text in (m.get("text") or "")), None)


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")
