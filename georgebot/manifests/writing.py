"""Jobs written from Slack (`/george run`, `/george cancel`), committed to Git like any other.

Git stays the source of truth: George writes `GEORGE_PATH/jobs/<name>.yaml` (or removes a
Job's file) in a clone of its own under `GEORGE_HOME/writer/`, never in the operator's work
tree; checks the result as `validate` would; commits it authored as the person who asked;
and pushes it to the followed branch, or to a branch of its own for review when a prefix
is set (a protected branch). The sync then applies the commit like any other.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import git
from ruamel.yaml import YAML

from georgebot import errors
from georgebot.manifests.gitrepo import clone_folder, is_url
from georgebot.manifests.limits import DEFAULT, Limits
from georgebot.manifests.snapshot import Snapshot
from georgebot.manifests.source import load_worktree
from georgebot.model.specs import DEFAULT_URL
from georgebot.model.urls import redact, secrets_in

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
GEORGE = git.Actor("George", "george@localhost")


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True)
class Written:
    job: str
    sha: str
    branch: str  # where the commit went
    file: str
    review: bool  # pushed to a branch of its own, for a pull request
    link: str | None = None  # where to open that pull request, on GitHub or GitLab


def review_link(repo: str, base: str, branch: str) -> str | None:
    """The page that opens a pull (merge) request of `branch` into `base`, for a repository on
    GitHub or GitLab (an https or an ssh remote); None elsewhere."""
    found = re.match(r"^(?:https://(?:[^@/]+@)?|ssh://git@|git@)(github\.com|gitlab\.com)[:/](.+?)(?:\.git)?/?$",
                     repo.strip())
    if found is None:
        return None
    host, path = found.groups()
    if host == "github.com":
        return f"https://github.com/{path}/compare/{quote(base)}...{quote(branch)}?expand=1"
    return (f"https://gitlab.com/{path}/-/merge_requests/new?merge_request%5Bsource_branch%5D="
            f"{quote(branch, safe='')}&merge_request%5Btarget_branch%5D={quote(base, safe='')}")


class JobWriter:
    """One clone, one write at a time: two people starting jobs at once queue, in this George
    (a lock) and across Georges sharing GEORGE_HOME (a lock file beside the clone)."""

    def __init__(
        self, repo: str, *, branch: str, path: str, home: Path, branch_prefix: str | None = None,
        default_channel: str = "#george", limits: Limits = DEFAULT, george_url: str = DEFAULT_URL,
    ) -> None:
        self.repo = repo if is_url(repo) else str(Path(repo).resolve())
        self.branch = branch
        self.path = path.strip("/")
        self.folder = home / "writer" / clone_folder(self.repo)
        self.prefix = branch_prefix
        self._check = (default_channel, limits, george_url)
        self._lock = threading.Lock()

    def start(self, *, name: str, template: str, params: dict[str, Any], author: Author) -> Written:
        """Commits a new Job of `template`; raises InputError (a bad or taken name) or
        ManifestError (what `validate` says of it), and then commits nothing."""
        if not NAME.match(name):
            raise errors.InputError(f"{name!r} is not a job name: lowercase letters, digits and -, "
                                    "at most 63, starting and ending with a letter or digit")
        document = {"apiVersion": "george/v1", "kind": "Job", "metadata": {"name": name},
                    "spec": {"template": template, "params": params}}
        out = io.StringIO()
        YAML(typ="safe", pure=True).dump(document, out)
        text = "# yaml-language-server: $schema=../george.schema.json\n" + out.getvalue()
        with self._lock, self._shared():
            work = self._fresh()
            try:
                taken = self._snapshot(work).job_files.get(name)
                if taken is not None:
                    raise errors.InputError(f"a job named {name} exists already, in {taken}")
                file = f"{self.path}/jobs/{name}.yaml" if self.path else f"jobs/{name}.yaml"
                target = Path(str(work.working_tree_dir)) / file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                found = [e for e in self._snapshot(work).errors if e.file == file]
                if found:
                    raise errors.ManifestError("\n".join(str(e) for e in found))
                work.index.add([file])
                return self._commit(work, file, f"Start job {name} ({template})", author, name)
            finally:
                work.close()

    def cancel(self, name: str, author: Author) -> Written:
        """Commits the removal of Job `name`: its file, when the file holds nothing else."""
        with self._lock, self._shared():
            work = self._fresh()
            try:
                snapshot = self._snapshot(work)
                file = snapshot.job_files.get(name)
                if file is None:
                    raise errors.InputError(f"there is no job named {name} in Git")
                root = Path(str(work.working_tree_dir))
                loaded = YAML(typ="safe", pure=True).load_all((root / file).read_text())
                documents = [d for d in loaded if d is not None]
                if len(documents) != 1:
                    raise errors.InputError(f"{file} holds other documents besides job {name}: remove it "
                                            "there by hand and commit")
                work.index.remove([file], working_tree=True)
                return self._commit(work, file, f"Cancel job {name}", author, name)
            finally:
                work.close()

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(self.folder.with_name(self.folder.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _snapshot(self, work: git.Repo) -> Snapshot:
        channel, limits, url = self._check
        return load_worktree(Path(str(work.working_tree_dir)), self.path or ".", channel, limits, url)

    def _fresh(self) -> git.Repo:
        """The clone at the branch's head, with nothing left over from an earlier write."""
        try:
            if (self.folder / ".git").is_dir():
                work = git.Repo(self.folder)
                work.git.fetch("origin", self.branch)
                work.git.checkout("-B", self.branch, f"origin/{self.branch}")
                work.git.reset("--hard", f"origin/{self.branch}")
                work.git.clean("-fdx")
                return work
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            return git.Repo.clone_from(self.repo, self.folder, branch=self.branch)
        except git.GitCommandError as e:
            raise errors.TemporaryError(f"could not read {redact(self.repo)}: {self._said(e)}",
                                        reason="GitUnavailable") from None

    def _commit(self, work: git.Repo, file: str, message: str, author: Author, name: str) -> Written:
        person = git.Actor(author.name, author.email)
        commit = work.index.commit(f"{message}\n\nRequested in Slack by {author.name} <{author.email}>.",
                                   author=person, committer=GEORGE)
        target = f"{self.prefix}{name}" if self.prefix else self.branch
        try:
            work.git.push("origin", f"HEAD:refs/heads/{target}")
        except git.GitCommandError as e:
            said = self._said(e)
            hint = ""
            if "checked out" in said or "denyCurrentBranch" in said:
                hint = ("; the repository has the branch checked out: let it take pushes with "
                        "`git config receive.denyCurrentBranch updateInstead` there, or set "
                        "GEORGE_WRITE_BRANCH_PREFIX to push a branch for review")
            raise errors.TemporaryError(f"could not push to {redact(self.repo)}: {said}{hint}",
                                        reason="GitUnavailable") from None
        link = review_link(self.repo, self.branch, target) if self.prefix else None
        return Written(name, commit.hexsha, target, file, review=bool(self.prefix), link=link)

    def _said(self, error: git.GitCommandError) -> str:
        text = str(error.stderr or error).strip()
        for secret in secrets_in(self.repo):
            text = text.replace(secret, "***")
        return " ".join(text.split())[:500]
