"""Git access for the manifests: open a local repository or keep a bare clone of a remote one,
resolve a branch, list and read the files of a commit and its symlinks, write a commit's tree
to a folder (without the symlinks that lead out of the repository).

The only module that imports `git` (gitpython); `source.py` calls it. Git's failures are
translated here: an unusable repository or branch is a `ConfigError` saying what to set; a
failed fetch of a remote cloned before is a `TemporaryError` (the caller keeps what it had).
A remote's URL may carry a token (`https://x-access-token:…@host/org/repo.git`): every message,
chained error and folder name uses it redacted (`model/urls.py`); only git itself sees it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import git
from git.exc import BadName, BadObject

from georgebot.errors import ConfigError, TemporaryError
from georgebot.manifests import links
from georgebot.manifests.snapshot import Revision
from georgebot.model.urls import redact, redact_text, secrets_in

FETCH_TIMEOUT_SECONDS = 120
_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # a remote asking for a password fails instead of hanging
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_MAX_SUBTREES = 10_000  # listings of trees kept between syncs, so unchanged folders are not read
_MAX_LINK_TARGETS = 10_000  # symlink targets kept between revisions, by blob id
_SYMLINK_MODE = b"120000 "


def is_url(location: str) -> bool:
    """`https://...`, `ssh://...`, `file://...` and scp-like `git@host:org/repo` are remote."""
    return "://" in location or bool(_SCP_LIKE.match(location))


def is_sha(text: str) -> bool:
    return bool(_SHA.match(text))


def work_tree(location: str) -> Path | None:
    """The root of the Git work tree holding `location`, or None when it is not in one."""
    try:
        repo = git.Repo(location, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        return Path(repo.working_tree_dir) if repo.working_tree_dir else None
    finally:
        repo.close()


@dataclass(frozen=True)
class Listing:
    """The manifest files under a path at one commit: file path → blob id."""

    tree: str  # the id of the path's tree: equal trees mean equal files
    blobs: dict[str, str]


class GitRepository:
    """One repository, opened for the life of a `ManifestSource`; not thread-safe (the source
    serialises calls)."""

    def __init__(self, repo: git.Repo, location: str, *, remote: bool, fresh: bool = False) -> None:
        self._repo = repo
        self.location = redact(location)  # for messages: a URL's credentials masked
        self._secrets = secrets_in(location)
        self.remote = remote
        self._fresh = fresh  # just cloned: the first fetch has nothing to bring
        self._repo.git.update_environment(**_ENV)
        self._subtrees: dict[str, list[tuple[str, str]]] = {}
        self._links: tuple[str, dict[str, str]] | None = None  # (tree id, its symlinks)
        self._targets: dict[str, str] = {}  # symlink blob id -> target

    @classmethod
    def open(cls, location: str, *, home: Path) -> GitRepository:
        if is_url(location):
            repo, fresh = _clone(location, home / "clones")
            return cls(repo, location, remote=True, fresh=fresh)
        try:
            repo = git.Repo(location, search_parent_directories=True)
        except git.NoSuchPathError as e:
            raise ConfigError(
                f"the repository {location!r} does not exist; set GEORGE_REPO (or --repo) to "
                "the Git repository holding your manifests"
            ) from e
        except git.InvalidGitRepositoryError as e:
            raise ConfigError(
                f"{str(Path(location).resolve())!r} is not inside a Git repository; run George "
                "from the repository holding your manifests, set GEORGE_REPO (or --repo), or "
                "create one with the demo processes: georgebot init DIR"
            ) from e
        return cls(repo, location, remote=False)

    @property
    def root(self) -> Path:
        return Path(self._repo.working_tree_dir or self._repo.git_dir)

    def close(self) -> None:
        self._repo.close()

    def fetch(self) -> None:
        """Brings a clone up to date with its remote; nothing to do for a local repository."""
        if not self.remote or self._fresh:
            self._fresh = False
            return
        try:
            self._repo.git.fetch(
                "--prune", "--quiet", "origin", kill_after_timeout=FETCH_TIMEOUT_SECONDS
            )
        except git.GitCommandError as e:
            raise TemporaryError(
                f"cannot fetch {self.location}: {_stderr(e, self._secrets)}"
            ) from _scrubbed(e, self._secrets)

    def current_branch(self) -> str:
        """The checked-out branch of a local repository; the remote's default for a clone."""
        try:
            return str(self._repo.head.reference.name)
        except TypeError as e:  # HEAD is detached
            raise ConfigError(
                f"HEAD of {self.root} is detached, so there is no current branch to follow; "
                "set GEORGE_BRANCH (or --branch; `--branch HEAD` checks the commit checked out)"
            ) from e

    def resolve(self, branch: str) -> Revision:
        """The head commit of `branch` (a branch name first; also `HEAD`, a tag or an id)."""
        try:
            try:
                commit = self._repo.commit(f"refs/heads/{branch}")
            except (BadName, BadObject, ValueError):
                commit = self._repo.commit(branch)
        except (BadName, BadObject, ValueError) as e:
            heads = sorted(h.name for h in self._repo.heads)
            if not heads:
                raise ConfigError(
                    f"the repository {self.location} has no commits yet; commit your manifests "
                    "first"
                ) from e
            known = f"its branches are: {', '.join(heads)}"
            raise ConfigError(
                f"branch {branch!r} not found in {self.location} ({known}); set GEORGE_BRANCH "
                "(or --branch)"
            ) from e
        summary = commit.summary if isinstance(commit.summary, str) else repr(commit.summary)
        return Revision(
            sha=commit.hexsha,
            message=summary,
            committed_at=commit.committed_datetime.astimezone(UTC),
        )

    def listing(self, sha: str, path: str, suffixes: tuple[str, ...]) -> Listing | None:
        """Regular files under `path` whose names end with a suffix; None when `path` is not a
        folder at that commit. Subtrees unchanged since the last call are not read again."""
        tree = self._repo.commit(sha).tree
        path = path.strip("/")
        if path and path != ".":
            try:
                tree = tree / path
            except KeyError:
                return None
            if tree.type != "tree":
                return None
        else:
            path = ""
        if len(self._subtrees) > _MAX_SUBTREES:
            self._subtrees.clear()
        files = self._walk(tree, suffixes)
        prefix = f"{path}/" if path else ""
        return Listing(tree.hexsha, {f"{prefix}{name}": blob for name, blob in files})

    def _walk(self, tree: git.Tree, suffixes: tuple[str, ...]) -> list[tuple[str, str]]:
        known = self._subtrees.get(tree.hexsha)
        if known is None:
            known = []
            for item in tree:
                if item.type == "tree":
                    known.extend((f"{item.name}/{n}", b) for n, b in self._walk(item, suffixes))
                elif (
                    item.type == "blob"
                    and item.mode & 0o170000 == 0o100000  # a regular file, not a symlink
                    and item.name.endswith(suffixes)
                ):
                    known.append((item.name, item.hexsha))
            self._subtrees[tree.hexsha] = known
        return known

    def author_of(self, sha: str, file: str) -> str | None:
        """The e-mail of the author of the last commit up to `sha` that changed `file`."""
        try:
            commit = next(self._repo.iter_commits(sha, paths=file, max_count=1), None)
        except (git.GitCommandError, ValueError):
            return None
        email = commit.author.email if commit is not None else None
        return email or None

    def read(self, blob: str) -> bytes:
        data: bytes = self._repo.odb.stream(bytes.fromhex(blob)).read()
        return data

    def size(self, blob: str) -> int:
        """A blob's size in bytes, from its header: nothing of it is read."""
        return int(self._repo.odb.info(bytes.fromhex(blob)).size)

    def symlinks(self, sha: str) -> dict[str, str]:
        """Every symlink in the tree of commit `sha`, anywhere in the repository: path → target.
        One `git ls-tree` lists them and only their blobs are read; a commit whose tree is the
        last one's costs nothing more."""
        try:
            tree = self._repo.commit(sha).tree.hexsha
            if self._links is not None and self._links[0] == tree:
                return dict(self._links[1])
            listed: bytes = self._repo.git.ls_tree("-r", "-z", "--full-tree", tree, stdout_as_string=False)
        except (BadName, BadObject, ValueError) as e:
            raise ConfigError(f"there is no commit {sha} in {self.location}") from e
        except git.GitCommandError as e:
            raise ConfigError(
                f"cannot list the files of {sha} in {self.location}: {_stderr(e, self._secrets)}"
            ) from _scrubbed(e, self._secrets)
        if len(self._targets) > _MAX_LINK_TARGETS:
            self._targets.clear()
        found: dict[str, str] = {}
        for entry in listed.split(b"\0"):
            if entry.startswith(_SYMLINK_MODE):
                info, _, name = entry.partition(b"\t")
                blob = info.split(b" ")[2].decode()
                target = self._targets.get(blob)
                if target is None:
                    target = self._targets[blob] = os.fsdecode(self.read(blob))
                found[os.fsdecode(name)] = target
        self._links = (tree, found)
        return dict(found)

    def archive(self, sha: str, dest: Path) -> None:
        """Writes the tree of commit `sha` into the empty folder `dest`, executable bits kept.
        Symlinks that lead out of the repository are left out (`links`); the others are made
        once the files are there, so that a chain of links is judged whole, never half-made."""
        with tempfile.TemporaryFile(dir=dest.parent) as tar:
            try:
                self._repo.archive(tar, treeish=sha, format="tar")
            except git.GitCommandError as e:
                raise ConfigError(
                    f"cannot check out {sha} of {self.location}: {_stderr(e, self._secrets)}"
                ) from _scrubbed(e, self._secrets)
            kept = links.inside(self.symlinks(sha))
            tar.seek(0)
            with tarfile.open(fileobj=tar) as archive:
                members = archive.getmembers()
                files = [m for m in members if not m.issym()]
                archive.extractall(dest, members=files, filter="data")
        archived = {m.name for m in members if m.issym()}  # `export-ignore` may leave some out
        links.make(dest, {link: kept[link] for link in archived if link in kept})


def worktree_files(root: Path) -> list[str] | None:
    """The files of the work tree at `root` that Git tracks or would add (ignored files left
    out), relative to `root`; None when `root` is not a Git work tree."""
    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        listed: bytes = repo.git.ls_files(
            "-z", "--cached", "--others", "--exclude-standard", stdout_as_string=False
        )
    except git.GitCommandError:
        return None
    finally:
        repo.close()
    return sorted({os.fsdecode(name) for name in listed.split(b"\0") if name})


def commit_new_repository(directory: Path, message: str) -> str:
    """`georgebot init`: a new repository holding the files in `directory`, committed (with
    their executable bits). Returns the commit's SHA."""
    repo = git.Repo.init(directory, initial_branch="main")
    try:
        # Jobs started from Slack are pushed to it by George's own clone; the checkout follows.
        with repo.config_writer() as config:
            config.set_value("receive", "denyCurrentBranch", "updateInstead")
        reader = repo.config_reader()
        name = str(reader.get_value("user", "name", "George"))
        email = str(reader.get_value("user", "email", "george@localhost"))
        actor = git.Actor(name, email)
        repo.git.add(A=True)
        return str(repo.index.commit(message, author=actor, committer=actor).hexsha)
    finally:
        repo.close()


def clone_folder(url: str) -> str:
    """The folder name of a remote's clone: a readable slug and a hash, both of the redacted
    URL, so no credential is in the name, and a token that changes keeps the same clone."""
    shown = redact(url)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", shown).strip("-.")[-60:]
    return f"{slug}-{hashlib.sha256(shown.encode()).hexdigest()[:10]}"


def _old_clone_folder(url: str) -> str:
    """The name earlier versions gave a clone (slug and hash of the URL as given, credentials
    and all): such a folder is renamed to `clone_folder(url)`, not cloned again."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", url).strip("-.")[-60:]
    return f"{slug}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def _clone(url: str, clones: Path) -> tuple[git.Repo, bool]:
    """A bare clone under `clones`, made once and fetched afterwards (True when made now). Its
    branches mirror the remote's (`refs/heads/*`); HEAD names the remote's default branch.
    Its `config` holds the URL as given (git needs the credential to fetch): it is made
    readable by George's user only, and set again on every open, so a new token takes effect."""
    secrets = secrets_in(url)
    target = clones / clone_folder(url)
    old = clones / _old_clone_folder(url)
    if old != target and old.is_dir() and not target.exists():
        with contextlib.suppress(OSError):  # another George moved it first: fine
            old.rename(target)
    if target.is_dir():
        try:
            repo = git.Repo(target)
        except git.InvalidGitRepositoryError:
            shutil.rmtree(target)  # an interrupted clone: start again
        else:
            # Another George sharing GEORGE_HOME may hold the config's lock: its URL is as good.
            with contextlib.suppress(git.GitCommandError):
                if repo.git.config("--get", "remote.origin.url") != url:
                    repo.git.config("remote.origin.url", url)
            _private(target / "config")
            return repo, False
    clones.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".clone-", dir=clones))
    try:
        repo = git.Repo.clone_from(url, partial, bare=True, env=_ENV)
        repo.git.config("remote.origin.fetch", "+refs/heads/*:refs/heads/*")
        repo.close()
        _private(partial / "config")
        partial.rename(target)
    except git.GitCommandError as e:
        raise ConfigError(
            f"cannot clone {redact(url)}: {_stderr(e, secrets)}; check GEORGE_REPO (or --repo) "
            "and that this machine can read the repository"
        ) from _scrubbed(e, secrets)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return git.Repo(target), True


def _private(file: Path) -> None:
    with contextlib.suppress(OSError):  # not ours to change (a shared GEORGE_HOME): git still works
        file.chmod(0o600)


def _stderr(error: git.GitCommandError, secrets: list[str]) -> str:
    """What git said, its URLs redacted (git echoes the URL it was given)."""
    text = str(error.stderr or error).strip()
    text = re.sub(r"^stderr: ?", "", text).strip().strip("'").strip()
    return redact_text(" ".join(text.split()), secrets) or f"git exited with {error.status}"


def _scrubbed(error: git.GitCommandError, secrets: list[str]) -> git.GitCommandError:
    """The same failure for chaining (`raise ... from`), without the credentials its command
    line and output carry, so a traceback that is logged shows none."""
    def clean(value: object) -> str:
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
        return redact_text(text, secrets)

    parts = error.command if isinstance(error.command, list | tuple) else [error.command]
    status = error.status if isinstance(error.status, int) or error.status is None else clean(error.status)
    scrubbed = git.GitCommandError([clean(part) for part in parts] or ["git"], status)
    scrubbed.stderr, scrubbed.stdout = clean(error.stderr), clean(error.stdout)  # as git wrote them
    return scrubbed
