"""Tainted ids, so a job name is never passed where a step name belongs (mypy checks)."""

from typing import NewType

JobName = NewType("JobName", str)
TemplateName = NewType("TemplateName", str)
AgentName = NewType("AgentName", str)
StepName = NewType("StepName", str)
SlackUserId = NewType("SlackUserId", str)
Sha = NewType("Sha", str)
