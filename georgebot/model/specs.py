"""The three kinds of manifest as frozen pydantic models (DESIGN.md, "Field rules").

`manifests/` loads YAML into these and adds the checks that need more than one document
(unknown template or agent, parameters, fuzzy variables outside `instructions`). Unknown
fields are errors everywhere, so a typo never passes silently. Python attributes are
snake_case; the YAML spelling is the alias.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from georgebot.config import Duration
from georgebot.secrets import NAME as SECRET_NAME
from georgebot.secrets import reserved as reserved_secret

API_VERSION = "george/v1"

DnsLabel = Annotated[
    str,
    StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
]
"""Names are DNS labels: lowercase letters, digits and '-', at most 63 characters."""

DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = timedelta(seconds=10)
DEFAULT_TIMEOUT = timedelta(minutes=15)
MAX_BACKOFF = timedelta(minutes=5)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(_Spec):
    name: DnsLabel
    labels: dict[str, str] = {}


# --- AgentSpec ---------------------------------------------------------------------------


class ShellCapability(_Spec):
    commands: list[str] = Field(min_length=1)


DEFAULT_PORTS = {"http": 80, "https": 443}
_IPV6 = re.compile(r"^[0-9a-f:.]+(%[\w.-]+)?$")
_GRANT_HOST = re.compile(r"^(\*\.)?[^\s/:@\[\]*?#.]+(\.[^\s/:@\[\]*?#.]+)*\.?$")


def split_grant(entry: str) -> tuple[str, int | None]:
    """An `http` host grant as (host, port): `api.example.internal` → (…, None),
    `127.0.0.1:8080` → ("127.0.0.1", 8080), `*.corp.example:443`, `[::1]:8080`, `::1`.
    Raises ValueError, saying how to write one, for anything else (a URL, a path, a bad port)."""
    text = entry.strip().lower()
    if "/" in text or "@" in text:
        raise ValueError(_bad_grant(entry, "name a host (and a port), not a URL"))
    if text.startswith("["):  # an IPv6 address, with or without a port
        address, bracket, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not bracket or not _IPV6.match(address) or (rest and port_text is None):
            raise ValueError(_bad_grant(entry, "write an IPv6 address as [::1] or [::1]:8080"))
        return address, _grant_port(entry, port_text)
    if text.count(":") > 1:  # a bare IPv6 address: no port
        if not _IPV6.match(text):
            raise ValueError(_bad_grant(entry, "write an IPv6 address as [::1] or [::1]:8080"))
        return text, None
    host, colon, port_text = text.partition(":")
    if not _GRANT_HOST.match(host):
        raise ValueError(_bad_grant(entry, "a host is a name or an address, optionally after `*.`"))
    return host.rstrip("."), _grant_port(entry, port_text if colon else None)


def _grant_port(entry: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(_bad_grant(entry, "a port is a number from 1 to 65535"))
    return int(text)


def _bad_grant(entry: str, why: str) -> str:
    return (f"http host {entry!r} is not a host grant: {why}, e.g. api.example.internal, "
            "api.example.internal:8443 or \"*.corp.example\"")


def host_grant(host: str, port: int | None, scheme: str) -> str:
    """The grant that allows exactly this origin: `127.0.0.1:8080`; `api.example.internal`
    for the scheme's default port (80 for http, 443 for https)."""
    host = host.lower().rstrip(".")
    if port is None or port == DEFAULT_PORTS.get(scheme.lower()):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port made explicit; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.rstrip("."), DEFAULT_PORTS[scheme] if port is None else port


SELF = "self"
"""The `http` grant of George's own server (`{{ george.url }}`), whatever its port."""
DEFAULT_URL = "http://127.0.0.1:8080"  # George's own server when nothing else is said


def url_grant(url: str) -> str | None:
    """The `http` host grant that allows `url`'s origin (`127.0.0.1:8080` for
    `http://127.0.0.1:8080/healthz`); None when `url` is not an http(s) URL with a host."""
    origin = url_origin(url)
    return None if origin is None else host_grant(origin[1], origin[2], origin[0])


def _host_matches(pattern: str, host: str) -> bool:
    return host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))


class HttpCapability(_Spec):
    # `api.example.internal` (the scheme's default port only: 80 for http, 443 for https),
    # `127.0.0.1:8080` (that port only), `*.corp.example`, `*.corp.example:8443`.
    hosts: list[str] = Field(min_length=1)

    @field_validator("hosts")
    @classmethod
    def _grants(cls, hosts: list[str]) -> list[str]:
        for entry in hosts:
            split_grant(entry)
        return hosts


class SlackCapability(_Spec):
    channels: list[str] = Field(min_length=1)


class Capability(_Spec):
    """One grant, written `- shell: {...}`, `- http: {...}` or `- slack: {...}`."""

    shell: ShellCapability | None = None
    http: HttpCapability | None = None
    slack: SlackCapability | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Capability:
        if sum(x is not None for x in (self.shell, self.http, self.slack)) != 1:
            raise ValueError("a capability is exactly one of shell, http or slack")
        return self

    @property
    def kind(self) -> str:
        return "shell" if self.shell else "http" if self.http else "slack"


CapabilityKind = Literal["shell", "http", "slack"]

OnTimeout = Literal["fail", "reject"]
"""How a request nobody decided in time ends: `fail` (reason ApprovalTimedOut) or `reject`
(reason Rejected, as if an approver had rejected it)."""


class Escalate(_Spec):
    """After `after` without a decision, the request also asks `to` (users or user groups)."""

    after: Duration
    to: list[str] = Field(min_length=1)


class RequireApproval(_Spec):
    capabilities: list[CapabilityKind] = Field(min_length=1)
    approvers: list[str] = Field(min_length=1)
    escalate: Escalate | None = None
    timeout: Duration | None = None  # of each request; none: it waits without limit
    on_timeout: OnTimeout = Field("fail", alias="onTimeout")

    @model_validator(mode="after")
    def _escalates_in_time(self) -> RequireApproval:
        _check_escalation(self.escalate, self.timeout)
        return self


def _check_escalation(escalate: Escalate | None, timeout: timedelta | None) -> None:
    if escalate is not None and timeout is not None and escalate.after >= timeout:
        raise ValueError("`escalate.after` must be shorter than the `timeout`, or nobody is asked in time")


class Budget(_Spec):
    turns: int = Field(20, ge=1)
    tokens: int = Field(200_000, ge=1)


class AgentBody(_Spec):
    description: str = ""
    model: str | None = None
    capabilities: list[Capability] = []
    require_approval: RequireApproval | None = Field(None, alias="requireApproval")
    budget: Budget = Budget()
    max_concurrent_steps: int = Field(4, ge=1, alias="maxConcurrentSteps")
    secrets: list[str] = []  # names; each step of this agent gets their values in its environment

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not SECRET_NAME.match(name):
                raise ValueError(f"secret {name!r} is not a name like CREATE_ACCOUNT_TOKEN "
                                 "(capital letters, digits and _)")
            if reserved_secret(name):
                raise ValueError(f"secret {name!r} would replace a variable George sets for every "
                                 "step; choose another name")
        if len(set(names)) != len(names):
            raise ValueError("a secret is listed twice")
        return names

    @property
    def commands(self) -> set[str]:
        return {c for cap in self.capabilities if cap.shell for c in cap.shell.commands}

    @property
    def hosts(self) -> set[str]:
        return {h for cap in self.capabilities if cap.http for h in cap.http.hosts}

    @property
    def channels(self) -> set[str]:
        return {c for cap in self.capabilities if cap.slack for c in cap.slack.channels}

    def allows_host(self, host: str, port: int | None = None, scheme: str | None = None) -> bool:
        """Whether an `http` grant names `host`: exactly, or by a leading `*.` wildcard that
        matches any subdomain. With `scheme`, whether one allows that origin: a grant naming a
        port allows that port only; one naming none, the scheme's default port only (`port`
        None means the default). Without `scheme`, a grant of the host on any port counts:
        only for early warnings, never to let a request through (see `allows_url`)."""
        host = host.lower().rstrip(".")
        if scheme is not None and port is None:
            port = DEFAULT_PORTS.get(scheme.lower())
        for entry in self.hosts:
            pattern, granted = split_grant(entry)
            if not _host_matches(pattern, host):
                continue
            if scheme is None:
                return True
            wanted = granted if granted is not None else DEFAULT_PORTS.get(scheme.lower())
            if port is not None and port == wanted:
                return True
        return False

    def allows_url(self, url: str) -> bool:
        """Whether an `http` grant allows the origin (scheme, host, port) of `url`; False for
        anything but an http(s) URL with a host."""
        origin = url_origin(url)
        return origin is not None and self.allows_host(origin[1], origin[2], origin[0])


class AgentSpec(_Spec):
    api_version: Literal["george/v1"] = Field(alias="apiVersion")
    kind: Literal["AgentSpec"]
    metadata: Metadata
    spec: AgentBody


# --- TaskTemplate ------------------------------------------------------------------------


class VariableType(StrEnum):
    STRING = "string"
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    DATE = "date"
    ENUM = "enum"


class Variable(_Spec):
    """A strict variable (typed, validated, rendered) or a fuzzy one (given to the agent)."""

    type: VariableType | None = None
    fuzzy: bool = False
    description: str = ""
    required: bool = False
    default: Any = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        if self.fuzzy:
            fields = ("type", "pattern", "min", "max", "values")
            strict = [f for f in fields if getattr(self, f) is not None]
            if strict:
                raise ValueError(f"a fuzzy variable cannot have {', '.join(strict)}")
            return self
        kind = self.kind
        if kind is VariableType.ENUM and not self.values:
            raise ValueError("an enum variable needs `values: [...]`")
        if kind is not VariableType.ENUM and self.values is not None:
            raise ValueError("`values` is only for enum variables")
        if self.pattern is not None:
            if kind is not VariableType.STRING:
                raise ValueError("`pattern` is only for string variables")
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"`pattern` is not a regular expression: {e}") from e
        if (self.min is not None or self.max is not None) and kind not in (
            VariableType.INT,
            VariableType.NUMBER,
            VariableType.STRING,
        ):
            raise ValueError("`min` and `max` are for int, number and string (length) variables")
        return self

    @property
    def kind(self) -> VariableType:
        return self.type or VariableType.STRING


class HttpExpect(_Spec):
    status: int | None = None
    json_fields: dict[str, Any] = Field(default_factory=dict, alias="json")


class HttpCheck(_Spec):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = {}
    body: Any = Field(None, alias="json")
    expect: HttpExpect = HttpExpect()


class Ask(_Spec):
    message: str
    approvers: list[str] = Field(min_length=1)
    channel: str | None = None
    quorum: int = Field(1, ge=1)
    escalate: Escalate | None = None  # the step's `timeout` ends the request
    on_timeout: OnTimeout = Field("fail", alias="onTimeout")

    @model_validator(mode="after")
    def _quorum_reachable(self) -> Ask:
        users = [a for a in self.approvers if not a.startswith("S")]
        if self.quorum > len(self.approvers) and len(users) == len(self.approvers):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.approvers)} approvers")
        return self


class StepForm(StrEnum):
    RUN = "run"
    HTTP = "http"
    ASK = "ask"
    LLM = "instructions"


class Step(_Spec):
    name: DnsLabel
    agent: str | None = None
    needs: list[str] = []
    run: list[str] | None = Field(None, min_length=1)
    http: HttpCheck | None = None
    ask: Ask | None = None
    instructions: str | None = None
    done_when: str | None = None
    retries: int = Field(DEFAULT_RETRIES, ge=0)
    backoff: Duration = DEFAULT_BACKOFF
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Step:
        forms = [f for f in ("run", "http", "ask", "instructions") if getattr(self, f) is not None]
        if not forms:
            raise ValueError("a step needs exactly one of run, http, ask or instructions")
        if len(forms) > 1:
            raise ValueError(f"a step has exactly one form, this one has {' and '.join(forms)}")
        if (self.instructions is None) != (self.done_when is None):
            raise ValueError("`instructions` and `done_when` go together")
        if self.ask is None and not self.agent:
            raise ValueError(f"a {forms[0]} step needs an `agent`")
        if self.name in self.needs:
            raise ValueError("a step cannot need itself")
        if self.ask is not None:
            _check_escalation(self.ask.escalate, self.timeout)
        return self

    @property
    def form(self) -> StepForm:
        if self.run is not None:
            return StepForm.RUN
        if self.http is not None:
            return StepForm.HTTP
        if self.ask is not None:
            return StepForm.ASK
        return StepForm.LLM

    @property
    def effective_timeout(self) -> timedelta | None:
        """15 minutes unless given; an `ask` waits for people without limit unless given."""
        if self.timeout is not None:
            return self.timeout
        return None if self.form is StepForm.ASK else DEFAULT_TIMEOUT

    def retry_delay(self, failed_attempts: int) -> timedelta:
        """`backoff` before the first retry, doubling, capped at five minutes."""
        exponent = max(failed_attempts - 1, 0)
        delay: timedelta = self.backoff * (2**exponent)
        return min(delay, MAX_BACKOFF)


class TemplateBody(_Spec):
    description: str = ""
    channel: str | None = None
    variables: dict[str, Variable] = {}
    steps: list[Step] = Field(min_length=1)
    # The four-eyes rule: whoever committed a job may not approve its steps, unless this says so.
    allow_self_approval: bool = Field(False, alias="allowSelfApproval")
    # Who may retry its failed and blocked steps (users, user groups); none: anyone in its channel.
    # A step an approver rejected, or that timed out, is reopened only by its approvers anyway.
    retriers: list[str] = []


class TaskTemplate(_Spec):
    api_version: Literal["george/v1"] = Field(alias="apiVersion")
    kind: Literal["TaskTemplate"]
    metadata: Metadata
    spec: TemplateBody


# --- Job ---------------------------------------------------------------------------------


class JobBody(_Spec):
    template: str
    params: dict[str, Any] = {}
    channel: str | None = None
    deadline: Duration | None = None


class Job(_Spec):
    api_version: Literal["george/v1"] = Field(alias="apiVersion")
    kind: Literal["Job"]
    metadata: Metadata
    spec: JobBody


Manifest = AgentSpec | TaskTemplate | Job
KINDS: dict[str, type[AgentSpec] | type[TaskTemplate] | type[Job]] = {
    "AgentSpec": AgentSpec,
    "TaskTemplate": TaskTemplate,
    "Job": Job,
}
