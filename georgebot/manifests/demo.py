"""The demo set: the top-level `manifests/` and `tools/`, its one source. A built package
carries a copy in `georgebot/demo/` (setup.py puts it there); a checkout uses its own.
`georgebot init DIR` copies it into a new, committed repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from georgebot.errors import ConfigError
from georgebot.manifests.gitrepo import commit_new_repository

_PACKAGED = Path(__file__).resolve().parents[1] / "demo"
_CHECKOUT = Path(__file__).resolve().parents[2]


def demo_root() -> Path:
    for root in (_PACKAGED, _CHECKOUT):
        if (root / "manifests").is_dir() and (root / "tools").is_dir():
            return root
    raise ConfigError("the demo manifests are not installed with this copy of George; "
                      "reinstall it (pip install georgebot) or run it from its repository")


def create_demo_repository(directory: Path) -> str:
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty; name a new folder for the repository")
    root = demo_root()
    directory.mkdir(parents=True, exist_ok=True)
    for part in ("manifests", "tools"):
        shutil.copytree(root / part, directory / part)
    (directory / ".gitignore").write_text(".george/\ngeorge.db\ngeorge.db-*\n.george-output/\n")
    return commit_new_repository(directory, "George's demo processes")
