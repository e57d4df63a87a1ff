"""Exceptions become outcomes here and nowhere else (STYLE rule 2).

`run_step_once` runs one attempt through the `AgentRunner` port and always returns an
`Outcome`; the engine then branches on data. Cancellation is not an outcome: it propagates.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from georgebot import errors
from georgebot.config import format_duration
from georgebot.engine.ports import AgentRunner, Done, StepRecorder, StepTask, Wait
from georgebot.model.specs import StepForm
from georgebot.model.status import Reason, StepStatus

log = logging.getLogger(__name__)

TIMEOUT_GRACE = timedelta(seconds=5)
"""The executor enforces a step's timeout itself; the engine's own guard fires after this."""


@dataclass(frozen=True)
class Outcome:
    status: StepStatus  # Succeeded, Waiting, Blocked, or Failed (a failed attempt)
    reason: str | None = None
    message: str = ""
    result: Done | Wait | None = None
    temporary_delay: timedelta | None = None  # a "try later": Retrying, no retry used up
    temporary: bool = False
    final: bool = False  # failed, and no retry would help


async def run_step_once(runner: AgentRunner, task: StepTask, recorder: StepRecorder) -> Outcome:
    timeout = task.step.effective_timeout if task.step.form is not StepForm.ASK else None
    try:
        if timeout is None:
            result = await runner.run(task, recorder)
        else:
            async with asyncio.timeout((timeout + TIMEOUT_GRACE).total_seconds()):
                result = await runner.run(task, recorder)
    except errors.StepBlocked as e:
        return Outcome(StepStatus.BLOCKED, e.reason, str(e))
    except errors.TemporaryError as e:
        return Outcome(StepStatus.FAILED, e.reason, str(e), temporary=True, temporary_delay=e.delay)
    except errors.PermanentError as e:
        return Outcome(StepStatus.FAILED, e.reason, str(e), final=e.final)
    except errors.StepError as e:
        return Outcome(StepStatus.FAILED, e.reason, str(e))
    except TimeoutError:
        limit = format_duration(timeout) if timeout else "its timeout"
        return Outcome(StepStatus.FAILED, Reason.TIMED_OUT, f"timed out after {limit}")
    except Exception as e:  # a bug in an executor must not lose the step
        log.exception("step %s/%s crashed", task.job.name, task.step.name)
        return Outcome(StepStatus.FAILED, "AgentCrashed", f"the agent crashed: {e!r}")
    if isinstance(result, Wait):
        return Outcome(StepStatus.WAITING, None, result.message or "waiting for people", result)
    return Outcome(StepStatus.SUCCEEDED, None, result.message, result)
