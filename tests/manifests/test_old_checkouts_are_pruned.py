"""Checkouts of revisions nothing uses any more are removed; the ones in use, and any made
in the last hour (another George on the same home may be about to use it), stay."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta

from georgebot.manifests.source import ManifestSource
from tests.manifests.helpers import AGENTS, GitRepo

MakeSource = Callable[..., ManifestSource]


def test_unused_checkouts_older_than_the_grace_are_pruned(repo: GitRepo, make_source: MakeSource):
    shas = []
    for n in range(3):
        repo.write("manifests/agents.yaml", AGENTS)
        repo.write("tools/x", f"#!/bin/sh\necho {n}\n", mode=0o755)
        shas.append(repo.commit(f"revision {n}"))
    source = make_source(repo.root)
    old, used, fresh = (source.checkout(sha) for sha in shas)
    an_hour_ago = time.time() - 2 * 3600
    for folder in (old, used):
        os.utime(folder, (an_hour_ago, an_hour_ago))

    pruned = source.prune_checkouts({shas[1]})

    assert pruned == 1
    assert not old.exists()
    assert (used / "tools" / "x").exists() and (fresh / "tools" / "x").exists()
    assert source.checkout(shas[0]).joinpath("tools", "x").read_text() == "#!/bin/sh\necho 0\n"
    assert source.prune_checkouts(set(), older_than=timedelta(0)) == 3
