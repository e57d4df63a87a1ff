"""Builds carry the demo set (the top-level manifests/ and tools/) inside the package, so
`georgebot init` works from an installed wheel; everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithDemo(build_py):
    def run(self) -> None:
        super().run()
        here = Path(__file__).parent
        target = Path(self.build_lib) / "georgebot" / "demo"
        for part in ("manifests", "tools"):
            if (here / part).is_dir():
                shutil.rmtree(target / part, ignore_errors=True)
                shutil.copytree(here / part, target / part)


setup(cmdclass={"build_py": BuildWithDemo})
