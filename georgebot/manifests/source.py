"""Where desired state comes from: `ManifestSource` follows a branch of a Git repository and
turns each new revision into a `Snapshot`; `load_worktree` reads the files on disk instead.

The engine calls `sync()` (blocking: run it in a thread) and `checkout(sha)`, the folder where
`run` commands resolve; the CLI builds a source from `Settings`. Only commits are desired
state. Syncing is incremental: an unchanged revision returns the previous snapshot, and a new
one parses only the files whose contents changed.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from georgebot.config import Settings
from georgebot.errors import ConfigError
from georgebot.manifests import links
from georgebot.manifests.gitrepo import GitRepository, is_sha, is_url, work_tree, worktree_files
from georgebot.manifests.limits import DEFAULT, Limits
from georgebot.manifests.parsing import SUFFIXES, ParsedFile, parse_file, too_large
from georgebot.manifests.snapshot import Revision, Snapshot, with_errors
from georgebot.manifests.validation import Validator
from georgebot.model.specs import DEFAULT_URL
from georgebot.model.urls import redact

WORKTREE = "worktree"  # the revision id of a snapshot read from the files on disk
CHECKOUT_GRACE = timedelta(hours=1)  # an unused checkout younger than this is kept


class ManifestSource:
    """Follows `branch` (default: the repository's current branch, or a clone's default) of
    `repo`, a local path or a URL cloned under `home/clones`. Thread-safe."""

    def __init__(
        self,
        repo: str,
        *,
        branch: str | None = None,
        path: str = "manifests",
        home: Path = Path(".george"),
        default_channel: str = "#george",
        limits: Limits = DEFAULT,
        george_url: str = DEFAULT_URL,
    ) -> None:
        self.repo = repo
        self.limits = limits
        self.branch = branch
        self.path = _clean(path)
        self.home = home.absolute()
        self.last: Snapshot | None = None
        self.parsed_files = 0  # files parsed so far: unchanged files are never parsed twice
        self._validator = Validator(default_channel, limits=limits, george_url=george_url)
        self._git: GitRepository | None = None
        self._files: dict[str, tuple[str, ParsedFile]] = {}  # file -> (blob id, parsed)
        self._authored: dict[tuple[str, str], str | None] = {}  # (file, blob id) -> last committer
        self._tree: str | None = None
        self._manifests: Snapshot | None = None  # the last snapshot without the symlinks' errors
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, limits: Limits = DEFAULT) -> ManifestSource:
        return cls(
            settings.repo,
            branch=settings.branch,
            path=settings.path,
            home=settings.home,
            default_channel=settings.default_channel,
            limits=limits,
            george_url=settings.george_url,
        )

    def __enter__(self) -> ManifestSource:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Releases the repository; a sync stuck on a remote is left to die with the process
        rather than waited for (George must stop within seconds)."""
        if not self._lock.acquire(timeout=2):
            return
        try:
            if self._git is not None:
                self._git.close()
                self._git = None
        finally:
            self._lock.release()

    @property
    def renders(self) -> int:
        """Jobs rendered so far (a job and template unchanged since the last sync are not)."""
        return self._validator.renders

    def sync(self) -> Snapshot:
        """The snapshot of the branch's head. Raises ConfigError (unusable repository, branch
        or path) or TemporaryError (a fetch failed: keep the last snapshot)."""
        with self._lock:
            repo = self._open()
            repo.fetch()
            if self.branch is None:
                self.branch = repo.current_branch()
            revision = repo.resolve(self.branch)
            last = self.last
            if last is not None and last.revision.sha == revision.sha:
                return last
            listing = repo.listing(revision.sha, self.path, SUFFIXES)
            if listing is None:
                raise ConfigError(
                    f"there is no folder {self.path!r} in commit {revision.sha[:7]} of branch "
                    f"{self.branch!r} of {redact(self.repo)}; set GEORGE_PATH (or --path) to the folder "
                    "holding the manifests, relative to the repository root"
                )
            base = self._manifests
            if base is not None and listing.tree == self._tree:
                base = dataclasses.replace(base, revision=revision)
            else:
                files: dict[str, tuple[str, ParsedFile]] = {}
                for file, blob in listing.blobs.items():
                    known = self._files.get(file)
                    if known is None or known[0] != blob:
                        size = repo.size(blob)  # a huge blob is refused unread
                        if size > self.limits.file_bytes:
                            known = (blob, too_large(file, size, self.limits))
                        else:
                            known = (blob, parse_file(file, repo.read(blob), self.limits))
                        self.parsed_files += 1
                    files[file] = known
                self._files = files
                base = self._validator.snapshot(revision, [p for _, p in files.values()])
            self._tree = listing.tree
            self._manifests = base
            # Links anywhere in the repository, not only under the manifests path: a `run`
            # command may be any file of the revision.
            snapshot = with_errors(base, links.issues(repo.symlinks(revision.sha)))
            snapshot = dataclasses.replace(snapshot, job_authors=self._authors(repo, revision.sha, snapshot))
            self.last = snapshot
            return snapshot

    def _authors(self, repo: GitRepository, sha: str, snapshot: Snapshot) -> dict[str, str]:
        """Who last committed each job's file (the four-eyes rule), asked of Git once per
        version of the file."""
        authors: dict[str, str] = {}
        for name, file in snapshot.job_files.items():
            blob = self._files.get(file, ("", None))[0]
            key = (file, blob)
            if key not in self._authored:
                self._authored[key] = repo.author_of(sha, file)
            if (email := self._authored[key]) is not None:
                authors[name] = email
        return authors

    def checkout(self, sha: str) -> Path:
        """The repository's tree at commit `sha`, under `home/checkouts/<sha>/`: the working
        directory of `run` steps. Made once; later calls return the same folder. Symlinks that
        lead out of the repository are left out of it (`sync` reports them)."""
        if not is_sha(sha):
            raise ValueError(f"{sha!r} is not a full commit id")
        target = self.home / "checkouts" / sha
        if target.is_dir():
            return target
        with self._lock:
            if target.is_dir():
                return target
            repo = self._open()
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=target.parent))
            try:
                repo.archive(sha, partial)
                partial.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            return target

    def prune_checkouts(self, keep: set[str], *, older_than: timedelta = CHECKOUT_GRACE) -> int:
        """Removes the checkouts of revisions not in `keep` made more than `older_than` ago
        (another George sharing GEORGE_HOME may have just made one). Returns how many."""
        folder = self.home / "checkouts"
        if not folder.is_dir():
            return 0
        cutoff = time.time() - older_than.total_seconds()
        pruned = 0
        for entry in folder.iterdir():
            name = entry.name.lstrip(".").split("-")[0]
            if name in keep or entry.name in keep or not entry.is_dir():
                continue
            try:
                if entry.stat().st_mtime > cutoff:
                    continue
            except OSError:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            pruned += 1
        return pruned

    def _open(self) -> GitRepository:
        if self._git is None:
            self._git = GitRepository.open(self.repo, home=self.home)
        return self._git


def find_root(location: str) -> Path:
    """The folder `validate --worktree` reads: the Git work tree holding `location`, or
    `location` itself when it is a plain folder."""
    if is_url(location):
        raise ConfigError(
            f"--worktree reads files on disk, but the repository is a URL ({redact(location)}); "
            "run it inside a checkout or pass --repo PATH"
        )
    root = work_tree(location)
    if root is not None:
        return root
    if Path(location).is_dir():
        return Path(location)
    raise ConfigError(f"{location!r} is not a folder; set GEORGE_REPO (or --repo) to a checkout")


def load_worktree(
    root: Path, path: str, default_channel: str, limits: Limits = DEFAULT, george_url: str = DEFAULT_URL
) -> Snapshot:
    """The manifests as they are on disk under `root/path`, committed or not (revision
    `worktree`): for checking an edit before committing it."""
    base = root / _clean(path)
    if not base.is_dir():
        raise ConfigError(
            f"there is no folder {path!r} in {root}; set GEORGE_PATH (or --path) to the folder "
            "holding the manifests, relative to the repository root"
        )
    files: list[ParsedFile] = []
    for folder, dirs, names in os.walk(base):
        dirs.sort()
        for name in sorted(names):
            file = Path(folder, name)
            if name.endswith(SUFFIXES) and file.is_file() and not file.is_symlink():
                relative = file.relative_to(root).as_posix()
                size = file.stat().st_size
                if size > limits.file_bytes:
                    files.append(too_large(relative, size, limits))
                else:
                    files.append(parse_file(relative, file.read_bytes(), limits))
    revision = Revision(sha=WORKTREE, message=f"files on disk in {root}")
    snapshot = Validator(default_channel, limits=limits, george_url=george_url).snapshot(revision, files)
    return with_errors(snapshot, links.issues(links.on_disk(root, _repository_files(root))))


def _repository_files(root: Path) -> list[str]:
    """What a commit of the work tree would hold (Git's ignore rules apply, so a `.venv` of
    links to the system Python is not reported); every file of a plain folder."""
    listed = worktree_files(root)
    if listed is not None:
        return listed
    found: list[str] = []
    for folder, dirs, names in os.walk(root):  # symlinked folders are listed, not entered
        found.extend(Path(folder, name).relative_to(root).as_posix() for name in [*dirs, *names])
    return found


def _clean(path: str) -> str:
    parts = [p for p in Path(path).as_posix().split("/") if p not in ("", ".")]
    if ".." in parts or Path(path).is_absolute():
        raise ConfigError(f"GEORGE_PATH {path!r} must be a folder inside the repository")
    return "/".join(parts) or "."
