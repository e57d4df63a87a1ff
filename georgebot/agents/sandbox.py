"""Where an attempt's processes run: inside bubblewrap when it can start, else unconfined
with the defences that remain.

`runtime.py` builds one `Sandbox` at start (`Sandbox.detect`) and hands it to every
`ShellRunner`, so `run` steps and an LLM agent's commands are confined alike. Under
bubblewrap a tool has its own PID, IPC and mount namespaces (George's processes and their
`/proc/*/environ` are out of sight), no capabilities, a read-only view of the system's
programs and libraries and of the revision's checkout, and only its output folder and a
private `/tmp` writable; it dies with George. Unconfined, each attempt works in a private
copy of the checkout instead. Either way the environment is only what the step is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from georgebot.agents.keeper import Keeper
from georgebot.errors import ConfigError

Mode = Literal["auto", "bubblewrap", "unconfined", "off"]

BUBBLEWRAP = "bubblewrap"
NONE = "none"
OFF = "off"

# What a tool may see of the host besides the checkout and its folders: programs, libraries
# and the few files of /etc that name resolution, TLS and locales read. Not /etc as a whole
# (it holds /etc/shadow, keys, George's own configuration), not /home, /root, /var or /srv.
_SYSTEM = ("/usr", "/opt")
_TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "gai.conf", "group", "host.conf",
    "hostname", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
    "nsswitch.conf", "passwd", "pki", "protocols", "resolv.conf", "services", "ssl", "timezone",
)


@dataclass(frozen=True)
class SandboxInfo:
    """What `status` says: `bubblewrap 0.8.0`; `none` and why (unconfined, a private copy
    of the checkout per attempt); or `off` (unconfined in the shared checkout)."""

    kind: str
    detail: str

    @property
    def confined(self) -> bool:
        return self.kind == BUBBLEWRAP

    def describe(self) -> str:
        if self.confined:
            return f"steps run sandboxed ({self.detail})"
        return f"steps are NOT sandboxed: {self.detail}"


class Sandbox:
    """Builds the command line of a confined attempt, and owns the keeper of its processes."""

    def __init__(self, info: SandboxInfo, *, bwrap: str | None = None) -> None:
        self.info = info
        self._bwrap = bwrap
        self.keeper = Keeper()

    @classmethod
    def detect(cls, mode: Mode = "auto", *, bwrap: str | None = None) -> Sandbox:
        """`auto`: bubblewrap if it starts here, else unconfined saying why; `bubblewrap`:
        a ConfigError when it cannot start; `unconfined`: as without bubblewrap; `off`: no
        defence but the environment (measuring George, trusted tools). `bwrap` is the program
        to try (default: `bwrap` on PATH)."""
        if mode == "off":
            return cls(SandboxInfo(OFF, "GEORGE_SANDBOX is off: steps run in the shared checkout"))
        if mode == "unconfined":
            return cls(SandboxInfo(NONE, "GEORGE_SANDBOX is unconfined"))
        bwrap, why = _try_bubblewrap(bwrap or shutil.which("bwrap"))
        if bwrap is not None:
            return cls(SandboxInfo(BUBBLEWRAP, why), bwrap=bwrap)
        if mode == "bubblewrap":
            raise ConfigError(
                f"GEORGE_SANDBOX is bubblewrap, but {why}; install Debian's bubblewrap package "
                "(and allow user namespaces), or set GEORGE_SANDBOX=auto to run steps unconfined"
            )
        return cls(SandboxInfo(NONE, why))

    @property
    def confined(self) -> bool:
        return self._bwrap is not None

    def close(self) -> None:
        self.keeper.close()

    @contextlib.asynccontextmanager
    async def workspace(self, checkout: Path) -> AsyncIterator[Path]:
        """The attempt's working directory: the shared checkout, mounted read-only in the
        sandbox; unconfined, a private copy, so what one attempt writes there reaches no
        other, removed when the attempt ends. Off, the shared checkout itself."""
        if self.confined or self.info.kind == OFF:
            yield checkout
            return
        folder = Path(tempfile.mkdtemp(prefix="george-attempt-"))
        try:
            copy = folder / "checkout"
            await asyncio.to_thread(shutil.copytree, checkout, copy, symlinks=True)
            yield copy
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    def start_failure(self, code: int | None, last_stderr_line: str) -> str | None:
        """Why bwrap could not start the tool (its interpreter is missing, say), if it could
        not: unconfined, that is an OSError at the start instead."""
        if self.confined and code == 1 and last_stderr_line.startswith("bwrap: "):
            return last_stderr_line.removeprefix("bwrap: ")
        return None

    def returncode(self, code: int | None) -> int | None:
        """The tool's own ending: bwrap exits 128+N for a tool killed by signal N."""
        if self.confined and code is not None and 128 < code <= 128 + 64:
            return -(code - 128)
        return code

    def command(
        self,
        argv: Sequence[str],
        *,
        workdir: Path,
        writable: Sequence[Path] = (),
        readable: Sequence[Path] = (),
    ) -> list[str]:
        """`argv` as it is started: wrapped in bubblewrap when confined. The environment is
        passed to bwrap's own process, never on its command line, which anyone may read."""
        if self._bwrap is None:
            return list(argv)
        return [self._bwrap, *_bubblewrap_args(workdir, writable, readable), "--", *argv]


def _bubblewrap_args(workdir: Path, writable: Sequence[Path], readable: Sequence[Path]) -> list[str]:
    args = [
        "--die-with-parent",  # SIGKILL of George takes the sandbox with it
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--new-session",  # no writing into a terminal George may have
        "--cap-drop", "ALL",  # as root, bwrap would otherwise keep every capability
    ]
    for path in _SYSTEM:
        args += ["--ro-bind-try", path, path]
    for path in _TOP_LINKS:
        top = Path(path)
        if top.is_symlink():  # Debian's merged /usr: /bin -> usr/bin
            args += ["--symlink", str(top.readlink()), path]
        elif top.is_dir():
            args += ["--ro-bind", path, path]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for folder in readable:
        args += ["--ro-bind", str(folder), str(folder)]
    args += ["--ro-bind", str(workdir), str(workdir)]
    for folder in writable:
        args += ["--bind", str(folder), str(folder)]
    return [*args, "--chdir", str(workdir)]


@functools.cache
def _try_bubblewrap(bwrap: str | None) -> tuple[str | None, str]:
    """(bwrap's path, its version) when a trial sandbox starts here; (None, why not) else."""
    if bwrap is None:
        return None, "bubblewrap (bwrap) is not installed"
    try:
        version = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="george-trial-") as folder:
            trial = subprocess.run(
                [bwrap, *_bubblewrap_args(Path(folder), (), ()), "--", "/bin/true"],
                capture_output=True, text=True, timeout=10, check=False,
            )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"bwrap cannot start ({e})"
    if trial.returncode != 0:
        last = (trial.stderr.strip().splitlines() or [f"exit {trial.returncode}"])[-1]
        return None, f"bwrap cannot start a sandbox here ({last})"
    return bwrap, version or "bubblewrap"
