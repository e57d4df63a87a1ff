"""Symlinks of a revision that lead out of the repository (DESIGN.md, "Symlinks leaving the
repository"): which they are, the manifest error that names each, and the making of the others
in a checkout.

`gitrepo.py` hands over a commit's links (path → target) and makes checkouts with `make`;
`source.py` reports `issue`s at every sync and reads a work tree's links with `on_disk`.
Links are followed as the kernel would, through the other links of the same tree, without
touching the disk, so a revision is judged the same way whether or not it is checked out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from georgebot.manifests import messages
from georgebot.manifests.snapshot import ManifestIssue

log = logging.getLogger(__name__)

# Links followed in one lookup, as Linux's limit. A longer chain or a loop never resolves, so
# it cannot reach anything outside the repository: it stays (inert) in the checkout.
MAX_HOPS = 40


@dataclass(frozen=True)
class Escape:
    """A link whose target, followed, leaves the repository root."""

    link: str  # relative to the repository root, `/`-separated
    target: str  # as the link says
    via: str | None = None  # the link further down the chain whose target climbs out
    via_target: str = ""


def leaving(links: Mapping[str, str]) -> list[Escape]:
    """The links of one tree (path → target) that lead out of it, in path order."""
    return [escape for link in sorted(links) if (escape := _follow(link, links)) is not None]


def inside(links: Mapping[str, str]) -> dict[str, str]:
    """The links that a checkout may hold: those that stay in the repository."""
    out = {escape.link for escape in leaving(links)}
    return {link: target for link, target in links.items() if link not in out}


def issue(escape: Escape) -> ManifestIssue:
    """The manifest error of one link: about the whole link, so no line and no object."""
    link, target = _shown(escape.link), _shown(escape.target)
    if escape.via is None:
        message = messages.symlink_outside(link, target)
    else:
        message = messages.symlink_outside_via(link, target, _shown(escape.via), _shown(escape.via_target))
    return ManifestIssue(file=link, line=None, column=None, kind="-", name="-", message=message)


def issues(links: Mapping[str, str]) -> tuple[ManifestIssue, ...]:
    return tuple(issue(escape) for escape in leaving(links))


def make(root: Path, links: Mapping[str, str]) -> None:
    """Creates `links` (judged `inside`) under the checkout `root`, once its files are there,
    and removes any that the file system resolves outside `root` all the same: the disk has
    the last word. A link that cannot be made (an empty target) is left out and logged; the
    checkout still completes."""
    for link, target in sorted(links.items()):
        path = root / link
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, path)
        except (OSError, ValueError) as e:  # ValueError: a NUL byte in the target
            log.warning("symlink %s -> %r left out of the checkout: %s", link, target, e)
    real = os.path.realpath(root)
    for link in sorted(links):
        path = root / link
        if path.is_symlink() and not _within(os.path.realpath(path), real):
            log.warning("symlink %s leads outside the checkout on disk; removed", link)
            path.unlink()


def on_disk(root: Path, files: Iterable[str]) -> dict[str, str]:
    """The links among `files` (relative to `root`) as the disk has them, for a work tree."""
    found: dict[str, str] = {}
    for file in files:
        path = root / file
        if path.is_symlink():
            try:
                found[file] = os.readlink(path)
            except OSError:
                continue  # removed while we looked
    return found


def _follow(link: str, links: Mapping[str, str]) -> Escape | None:
    """How `link` leaves the root, or None when following it stays inside. `folder` is where
    the walk stands: real folders only, since a folder of a tree is never a link. Each
    component still to walk remembers the link it came from, so an escape names the link whose
    target climbs out."""
    folder = link.split("/")[:-1]
    pending: list[tuple[str, str]] = []  # (component, the link it is from), next one last
    current = link
    for _ in range(MAX_HOPS):
        target = links[current]
        if target.startswith("/"):
            return _escape(link, links, current)
        pending.extend((part, current) for part in reversed(target.split("/")))
        while pending:
            part, owner = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if not folder:
                    return _escape(link, links, owner)
                folder.pop()
                continue
            path = "/".join([*folder, part])
            if path in links:
                current = path  # its target is relative to `folder`, where it is
                break
            folder.append(part)
        else:
            return None
    return None


def _escape(link: str, links: Mapping[str, str], culprit: str) -> Escape:
    if culprit == link:
        return Escape(link, links[link])
    return Escape(link, links[link], via=culprit, via_target=links[culprit])


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _shown(text: str) -> str:
    """A path as an operator can read it: bytes that are not UTF-8 become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
