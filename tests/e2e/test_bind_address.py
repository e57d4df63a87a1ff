"""Where George's HTTP server listens (DESIGN, "Bind address"): on this machine only, unless
PORT comes from the environment (a platform routes to it: every interface); GEORGE_HOST says
otherwise. Checked in `Settings` and by connecting to a running George, through 127.0.0.2:
another address of this machine, which a server bound to 127.0.0.1 does not answer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from georgebot.config import Settings
from georgebot.runtime import run_bot
from tests.e2e.conftest import MakeRepo
from tests.e2e.running import free_port

JOB = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: nothing}
spec:
  steps: [{name: wait, ask: {message: "Ready?", approvers: [U01ALEX]}}]
"""


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "GEORGE_HOST", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_without_port_in_the_environment_george_listens_on_this_machine_only() -> None:
    assert Settings().host == "127.0.0.1"
    assert Settings(port=9000).host == "127.0.0.1"  # a port chosen in code is no platform's


def test_with_port_in_the_environment_george_listens_on_every_interface(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    settings = Settings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


@pytest.mark.parametrize(("port", "host", "expected"), [
    ("9000", "127.0.0.1", "127.0.0.1"),
    (None, "0.0.0.0", "0.0.0.0"),
    (None, " ::1 ", "::1"),
    ("9000", "", "0.0.0.0"),  # blank is unset
    (None, "", "127.0.0.1"),
])
def test_george_host_says_where_to_listen(monkeypatch: pytest.MonkeyPatch, port: str | None, host: str,
                                          expected: str) -> None:
    if port is not None:
        monkeypatch.setenv("PORT", port)
    monkeypatch.setenv("GEORGE_HOST", host)
    assert Settings().host == expected


def second_loopback_works() -> bool:
    """127.0.0.2 reaches a server on 0.0.0.0 (Linux routes all of 127/8 to loopback)."""
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        try:
            socket.create_connection(("127.0.0.2", server.getsockname()[1]), timeout=2).close()
        except OSError:
            return False
    return True


needs_127_0_0_2 = pytest.mark.skipif(not second_loopback_works(), reason="127.0.0.2 is not this machine here")


async def answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[None]:
    """`georgebot run` in this process with the local Slack, until the block ends."""
    stop, ready = asyncio.Event(), asyncio.Event()
    bot = asyncio.create_task(run_bot(settings, announce=lambda _: ready.set(), stop=stop))
    announced = asyncio.create_task(ready.wait())
    await asyncio.wait({bot, announced}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    announced.cancel()
    with suppress(asyncio.CancelledError):
        await announced
    if bot.done():
        bot.result()  # it stopped before it ran: its error is the test's
    assert ready.is_set(), "George did not start in 30 s"
    try:
        yield
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(bot, 30)


def settings_for(repo: Path, tmp_path: Path, **given: object) -> Settings:
    return Settings(repo=str(repo), database_url=f"sqlite:///{tmp_path / 'george.db'}",
                    home=tmp_path / "home", local_slack_port=free_port(), **given)  # type: ignore[arg-type]


@needs_127_0_0_2
async def test_a_george_without_port_in_the_environment_is_not_reachable_from_elsewhere(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(make_repo({"manifests/t.yaml": JOB}), tmp_path, port=port)

    async with running(settings):
        assert await answers("127.0.0.1", port)
        assert not await answers("127.0.0.2", port)


@needs_127_0_0_2
async def test_a_george_given_port_by_the_platform_listens_on_every_interface(
        make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("PORT", str(port))
    settings = settings_for(make_repo({"manifests/t.yaml": JOB}), tmp_path)

    async with running(settings):
        assert await answers("127.0.0.1", port)
        assert await answers("127.0.0.2", port)


@needs_127_0_0_2
async def test_george_host_keeps_a_platform_george_on_the_address_it_names(
        make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("PORT", str(port))
    monkeypatch.setenv("GEORGE_HOST", "127.0.0.2")
    settings = settings_for(make_repo({"manifests/t.yaml": JOB}), tmp_path)

    async with running(settings):
        assert await answers("127.0.0.2", port)
        assert not await answers("127.0.0.1", port)


async def test_an_address_george_cannot_listen_on_is_a_configuration_error(
        make_repo: MakeRepo, tmp_path: Path) -> None:
    from georgebot.errors import ConfigError

    settings = settings_for(make_repo({"manifests/t.yaml": JOB}), tmp_path, port=free_port(),
                            host="192.0.2.1")  # TEST-NET-1: never an address of this machine
    with pytest.raises(ConfigError, match="GEORGE_HOST"):
        async with running(settings):
            pass
