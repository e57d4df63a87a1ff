"""A token in `GEORGE_REPO` (or in any URL George prints) never appears in its messages, in
the errors chained to them, or in a folder name under `GEORGE_HOME`: the redaction table, a
remote served over Git's dumb HTTP that goes away, and `georgebot validate` run as a process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from georgebot.errors import ConfigError, TemporaryError
from georgebot.manifests.gitrepo import clone_folder
from georgebot.manifests.source import ManifestSource, find_root
from georgebot.model.urls import redact, redact_text, secrets_in
from tests.manifests.helpers import AGENTS, GIT_ENV, TEMPLATE, GitRepo, job

SECRET = "s3cr3t-9f8e7d"


@pytest.mark.parametrize(("url", "shown"), [
    ("https://x-access-token:s3cr3t@github.example/org/repo.git", "https://***@github.example/org/repo.git"),
    ("https://ghp_0123456789@github.example/org/repo.git", "https://***@github.example/org/repo.git"),
    ("http://bob:hunter2@127.0.0.1:8080/healthz", "http://***@127.0.0.1:8080/healthz"),
    ("https://h.example/p?token=abc&user=alice", "https://h.example/p?token=***&user=alice"),
    ("https://h.example/p?access_token=a&key=b&password=c&secret=d&sig=e",
     "https://h.example/p?access_token=***&key=***&password=***&secret=***&sig=***"),
    ("https://h.example/p?apiKey=a&X-Amz-Signature=b&X-Amz-Date=20260101",
     "https://h.example/p?apiKey=***&X-Amz-Signature=***&X-Amz-Date=20260101"),
    ("https://h.example/cb#access_token=a&state=x", "https://h.example/cb#access_token=***&state=x"),
    ("https://h.example/p?user=alice&page=2", "https://h.example/p?user=alice&page=2"),
    ("https://h.example/p?token=", "https://h.example/p?token="),
    ("ssh://git@git.example/org/repo.git", "ssh://git@git.example/org/repo.git"),
    ("ssh://git:pw@git.example/org/repo.git", "ssh://***@git.example/org/repo.git"),
    ("git@github.example:org/repo.git", "git@github.example:org/repo.git"),
    ("/srv/manifests", "/srv/manifests"),
    ("https://[::1]:8443/x?secret=1", "https://[::1]:8443/x?secret=***"),
])
def test_a_url_is_shown_without_its_credentials(url: str, shown: str):
    assert redact(url) == shown


def test_urls_in_text_are_redacted_and_known_secrets_masked_however_written():
    url = "https://x-access-token:s3%2Fcr3t@127.0.0.1:1/none.git"
    said = (f"fatal: unable to access '{url}/': failed; cmdline: git clone -v -- {url} /tmp/x; "
            "the password s3/cr3t was refused")

    text = redact_text(said, secrets_in(url))

    assert text == ("fatal: unable to access 'https://***@127.0.0.1:1/none.git/': failed; cmdline: "
                    "git clone -v -- https://***@127.0.0.1:1/none.git /tmp/x; the password *** was refused")


def test_the_clone_folder_names_no_credential_and_outlives_a_new_token():
    first = clone_folder(f"https://x-access-token:{SECRET}@github.example/org/repo.git")
    rotated = clone_folder("https://x-access-token:another-token-1@github.example/org/repo.git")

    assert SECRET not in first
    assert first == rotated
    assert first != clone_folder("https://x-access-token:t@github.example/org/other.git")
    assert clone_folder("file:///srv/repo.git") == clone_folder("file:///srv/repo.git")


class DumbHttpRemote:
    """A bare repository served as static files, as Git's dumb HTTP protocol reads it."""

    def __init__(self, root: Path) -> None:
        self.repo = GitRepo(root / "remote.git", bare=True)
        app = web.Application()
        app.router.add_static("/", root)
        self.server = TestServer(app)

    def url(self, secret: str = SECRET) -> str:
        return f"http://x-access-token:{secret}@127.0.0.1:{self.server.port}/remote.git"


def seed(tmp_path: Path, remote: DumbHttpRemote) -> None:
    work = GitRepo(tmp_path / "work")
    work.write("manifests/agents.yaml", AGENTS)
    work.write("manifests/templates.yaml", TEMPLATE)
    work.write("manifests/jobs.yaml", job("onboard-alice"))
    work.commit("onboard alice")
    work.git("push", "-q", str(remote.repo.root), "main")
    remote.repo.git("update-server-info")


def names_under(home: Path) -> list[str]:
    return [str(p.relative_to(home)) for p in home.rglob("*")]


async def test_a_failed_fetch_of_a_url_with_a_token_never_shows_the_token(tmp_path: Path):
    remote = DumbHttpRemote(tmp_path)
    seed(tmp_path, remote)
    home = tmp_path / "home"
    await remote.server.start_server()
    source = ManifestSource(remote.url(), home=home)
    port = remote.server.port
    try:
        first = await asyncio.to_thread(source.sync)
        await remote.server.close()  # the remote goes away: every poll fails
        with pytest.raises(TemporaryError) as failed:
            await asyncio.to_thread(source.sync)
    finally:
        source.close()
        await remote.server.close()

    assert set(first.jobs) == {"onboard-alice"}
    shown = "".join(traceback.format_exception(failed.value))  # the chained git error too
    assert f"cannot fetch http://***@127.0.0.1:{port}/remote.git" in shown
    assert SECRET not in shown
    assert not [n for n in names_under(home) if SECRET in n]
    [clone] = (home / "clones").iterdir()
    assert (clone / "config").stat().st_mode & 0o077 == 0  # it holds the URL git fetches with


async def test_a_clone_named_after_its_token_by_an_earlier_george_is_renamed(tmp_path: Path):
    remote = DumbHttpRemote(tmp_path)
    seed(tmp_path, remote)
    home = tmp_path / "home"
    await remote.server.start_server()
    try:
        source = ManifestSource(remote.url(), home=home)
        await asyncio.to_thread(source.sync)
        source.close()
        [clone] = (home / "clones").iterdir()
        # as earlier versions named it: the URL as given, token and all, in slug and hash
        url = remote.url()
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", url).strip("-.")[-60:]
        old = f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"
        clone.rename(home / "clones" / old)
        rotated = ManifestSource(remote.url("a-new-token-1"), home=home)
        again = ManifestSource(remote.url(), home=home)
        try:
            await asyncio.to_thread(again.sync)
            await asyncio.to_thread(rotated.sync)
        finally:
            again.close()
            rotated.close()
    finally:
        await remote.server.close()

    assert [p.name for p in (home / "clones").iterdir()] == [clone.name]
    assert SECRET not in clone.name


def test_validate_with_an_unreachable_url_says_so_without_the_token(tmp_path: Path):
    home = tmp_path / "home"
    env = {**os.environ, **GIT_ENV, "GEORGE_HOME": str(home), "GIT_TERMINAL_PROMPT": "0"}
    for name in ("GEORGE_REPO", "GEORGE_BRANCH", "GEORGE_PATH"):
        env.pop(name, None)

    done = subprocess.run(
        [sys.executable, "-m", "georgebot", "validate", "--repo",
         "https://x-access-token:s3cr3t@127.0.0.1:1/none.git"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 2, done.stderr
    assert "cannot clone https://***@127.0.0.1:1/none.git" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout
    assert not [n for n in names_under(home) if "s3cr3t" in n]


def test_a_config_error_about_a_url_names_it_redacted():
    with pytest.raises(ConfigError) as failed:
        find_root("https://x-access-token:s3cr3t@github.example/org/repo.git")

    assert "https://***@github.example/org/repo.git" in str(failed.value)
    assert "s3cr3t" not in str(failed.value)
