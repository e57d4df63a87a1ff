"""Step executors behind the engine's `AgentRunner` port: `run`, `http`, `ask`, and (later) LLM.

`runtime.py` builds one `StepRunner` (dispatch.py), starts it, hands it to the engine and
closes it at shutdown; the engine's supervision calls `StepRunner.run` once per attempt.
"""

from georgebot.agents.ask import AskRunner
from georgebot.agents.dispatch import Executor, LlmUnavailable, StepRunner
from georgebot.agents.http import HttpRunner
from georgebot.agents.shell import ShellRunner

__all__ = ["AskRunner", "Executor", "HttpRunner", "LlmUnavailable", "ShellRunner", "StepRunner"]
