"""An LLM agent's HTTP call is checked against its grants, port included, before anyone is
asked to approve it; and the approval request never shows a credential."""

from __future__ import annotations

from georgebot.agents import tools
from georgebot.model.specs import HttpCheck
from tests.agents.llm.fakes import agent_spec


def request(url: str, **headers: str) -> tools.Request:
    return tools.Request(HttpCheck.model_validate({"method": "GET", "url": url, "headers": headers}))


def test_a_call_to_a_port_the_agent_is_not_granted_is_refused_naming_the_grant():
    agent = agent_spec({"http": {"hosts": ["127.0.0.1"]}})

    refused = tools.refusal(agent, request("http://127.0.0.1:3000/api/reactions.add"))
    granted = tools.refusal(agent, request("http://127.0.0.1/healthz"))

    assert refused is not None and '127.0.0.1:3000' in str(refused)
    assert granted is None


def test_an_approval_request_hides_credentials_and_secrets_in_urls():
    call = request("https://api.example.internal/users?access_token=abc123secret",
                   Authorization="Bearer xyz-secret", Accept="application/json")

    shown = tools.describe(call)

    assert "abc123secret" not in shown and "xyz-secret" not in shown
    assert '"Accept": "application/json"' in shown and '"Authorization": "***"' in shown
