"""The `run` step: an argv the agent is granted, run without a shell in the synced checkout.

`StepRunner` (dispatch.py) calls `ShellRunner.run` once per attempt, and an LLM agent's
commands come through it too. This module decides what may run (the agent's `shell`
commands, matched exactly), where it is found (a path inside the checkout, or a bare name
on the minimal PATH), the environment it gets (nothing of George's own, plus the secrets
its agent is granted), and what the exit says; `sandbox.py` confines it, `process.py` does
the running and the killing, and every secret's value is masked in what it printed.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path, PurePosixPath

from georgebot import errors
from georgebot.agents import grants
from georgebot.agents.keeper import record
from georgebot.agents.process import run_process
from georgebot.agents.sandbox import Sandbox
from georgebot.config import format_duration
from georgebot.engine.ports import Done, StepRecorder, StepTask, seconds
from georgebot.model.specs import AgentSpec
from georgebot.model.status import Reason
from georgebot.secrets import Secrets

MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"

# A granted command the host or the checkout lacks is a broken repository or host, not a
# missing grant: CapabilityMissing would tell the operator to edit the AgentSpec, which
# cannot help. These fail the attempt instead, with what is wrong in the message.
COMMAND_NOT_FOUND = "CommandNotFound"
COMMAND_NOT_EXECUTABLE = "CommandNotExecutable"
COMMAND_OUTSIDE_CHECKOUT = "CommandOutsideCheckout"
COMMAND_FAILED_TO_START = "CommandFailedToStart"


class ShellRunner:
    """Runs `run` steps. Without a `sandbox` it finds its own (bubblewrap if it starts here)
    and closes it with itself; a given one belongs to whoever gave it."""

    def __init__(
        self,
        *,
        sandbox: Sandbox | None = None,
        secrets: Secrets | None = None,
        kill_grace: float = 2.0,
        tail_bytes: int = 4096,
        tail_lines: int = 40,
    ) -> None:
        self._owns_sandbox = sandbox is None
        self.sandbox = sandbox if sandbox is not None else Sandbox.detect()
        self.secrets = secrets if secrets is not None else Secrets()
        self._grace = kill_grace
        self._tail_bytes = tail_bytes
        self._tail_lines = tail_lines

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        if self._owns_sandbox:
            self.sandbox.close()

    async def run(self, task: StepTask, recorder: StepRecorder) -> Done:
        argv = task.step.run
        if not argv:
            raise errors.PermanentError(f"step {task.step.name} is not a `run` step")
        agent = grants.require_agent(task)
        command = argv[0]
        if command not in agent.spec.commands:
            raise grants.missing(agent, "shell", command, "run")
        granted = self._granted(agent)
        resolve_command(command, task.checkout)  # what is wrong with it, before any copying
        output_dir = task.output_dir.resolve()
        output_dir.mkdir(parents=True, exist_ok=True)
        timeout = task.step.effective_timeout
        keeper = self.sandbox.keeper

        async def started(group: int) -> None:
            await recorder.process(record(group))

        try:
            async with self.sandbox.workspace(task.checkout.resolve()) as workdir:
                program = resolve_command(command, workdir)
                finished = await run_process(
                    self.sandbox.command([str(program), *argv[1:]], workdir=workdir, writable=[output_dir]),
                    cwd=workdir,
                    env={**step_environment(task, output_dir), **granted},
                    time_limit=seconds(timeout),
                    grace=self._grace,
                    tail_bytes=self._tail_bytes,
                    tail_lines=self._tail_lines,
                    keeper=keeper,
                    started=started,
                )
        except OSError as e:
            raise errors.PermanentError(
                f"could not start {command}: {e.strerror or e}", reason=COMMAND_FAILED_TO_START
            ) from e
        failed = self.sandbox.start_failure(finished.returncode, finished.last_stderr_line)
        if failed is not None:
            raise errors.PermanentError(
                f"could not start {command}: {failed}", reason=COMMAND_FAILED_TO_START
            )
        finished = replace(finished, returncode=self.sandbox.returncode(finished.returncode))
        mask = self.secrets.mask
        output = mask(finished.output)
        if output:
            await recorder.note("output", output)
        if finished.returncode == -signal.SIGKILL and keeper.lapsed():
            raise errors.TemporaryError(
                f"George's lease on this step ran out unrenewed during attempt {task.attempt} "
                f"(George was paused or stuck); {command}'s processes were stopped",
                reason=Reason.RECOVERED,
            )
        if finished.timed_out:
            limit = format_duration(timeout) if timeout is not None else "its timeout"
            raise errors.PermanentError(
                f"{command} did not finish within {limit}; its processes were stopped",
                reason=Reason.TIMED_OUT,
            )
        if finished.returncode == 0:
            return Done(message=f"{command} exited with 0", output=output)
        last = f": {mask(finished.last_stderr_line)}" if finished.last_stderr_line else ""
        raise errors.PermanentError(
            f"{command} {_ending(finished.returncode)}{last}", reason=Reason.EXIT_CODE
        )


    def _granted(self, agent: AgentSpec) -> dict[str, str]:
        """The values of the agent's secrets; one George lacks blocks the step until it exists."""
        values: dict[str, str] = {}
        for name in agent.spec.secrets:
            found = self.secrets.lookup(name)
            if found.value is None:
                raise errors.CapabilityMissing(f"secret {name}", found.why)
            values[name] = found.value
        return values


def resolve_command(command: str, checkout: Path) -> Path:
    """A command with `/` is a file inside the checkout; a bare name is found on MINIMAL_PATH."""
    if "/" not in command:
        found = shutil.which(command, path=MINIMAL_PATH)
        if found is None:
            raise errors.PermanentError(
                f"{command} is not an executable on PATH ({MINIMAL_PATH}) on this host",
                reason=COMMAND_NOT_FOUND,
            )
        return Path(found)
    relative = PurePosixPath(command)
    if relative.is_absolute() or ".." in relative.parts:
        raise errors.PermanentError(
            f"{command} is outside the repository: a command with `/` is a path relative to "
            "the repository root (a bare name is looked up on PATH)",
            reason=COMMAND_OUTSIDE_CHECKOUT,
        )
    root = checkout.resolve()
    path = root / relative
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        raise errors.PermanentError(
            f"{command} does not exist in the repository at this revision",
            reason=COMMAND_NOT_FOUND,
        ) from e
    if not real.is_relative_to(root):
        raise errors.PermanentError(
            f"{command} is a symlink that leads outside the repository",
            reason=COMMAND_OUTSIDE_CHECKOUT,
        )
    if not real.is_file() or not os.access(real, os.X_OK):
        raise errors.PermanentError(
            f"{command} is not an executable file: commit it with mode 755",
            reason=COMMAND_NOT_EXECUTABLE,
        )
    return path


def _ending(code: int | None) -> str:
    if code is None:
        return "did not exit even after SIGKILL"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with {code}"


def step_environment(task: StepTask, output_dir: Path) -> dict[str, str]:
    """All a tool sees of the world's environment. HOME is the job's output folder, not the
    real one: a home holds credentials (~/.netrc, cloud configs) a step must not borrow."""
    return {
        "PATH": MINIMAL_PATH,
        "HOME": str(output_dir),
        "LANG": "C.UTF-8",
        "GEORGE_JOB": task.job.name,
        "GEORGE_STEP": task.step.name,
        "GEORGE_ATTEMPT": str(task.attempt),
        "GEORGE_OUTPUT_DIR": str(output_dir),
    }
