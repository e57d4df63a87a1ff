"""Settings: the only module that reads the environment.

`Settings()` is built once by the CLI (options override the environment) and handed down;
no other module reads `os.environ`. Names and defaults are DESIGN.md's configuration table.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PlainSerializer,
    SecretStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODEL = "claude-sonnet-5-5"

LOCAL_HOST = "127.0.0.1"
PLATFORM_HOST = "0.0.0.0"
"""Where PORT listens without GEORGE_HOST: every interface when PORT comes from the environment
(a platform routes traffic to it), else this machine only (DESIGN, "Bind address")."""

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: object) -> timedelta:
    """`30s`, `5m`, `1h`, `1d` (manifests and settings share this syntax)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    raise ValueError(f"{value!r} is not a duration; write a whole number and a unit: 30s, 5m, 1h, 1d")


_SIZES = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(value: timedelta) -> str:
    """A duration as manifests write it, for people: `15s`, `7d`, and `1h30m` when one unit
    does not fit (never Python's `0:00:15`)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _SIZES:
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _manifest_duration(value: timedelta) -> str:
    """One unit, as `parse_duration` reads it back (specs are compared by their dumps)."""
    seconds = int(value.total_seconds())
    for unit, size in _SIZES[:-1]:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_manifest_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["30s", "5m", "1h", "1d"]}),
]


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", populate_by_name=True, case_sensitive=True
    )

    repo: str = Field(".", validation_alias=_env("GEORGE_REPO"))
    branch: str | None = Field(None, validation_alias=_env("GEORGE_BRANCH"))
    path: str = Field("manifests", validation_alias=_env("GEORGE_PATH"))
    database_url: str = Field("sqlite:///george.db", validation_alias=_env("GEORGE_DATABASE_URL"))
    home: Path = Field(Path(".george"), validation_alias=_env("GEORGE_HOME"))
    default_channel: str = Field("#george", validation_alias=_env("GEORGE_DEFAULT_CHANNEL"))
    default_model: str = Field(DEFAULT_MODEL, validation_alias=_env("GEORGE_DEFAULT_MODEL"))
    default_deadline: Duration = Field(timedelta(days=7), validation_alias=_env("GEORGE_DEFAULT_DEADLINE"))
    max_concurrent_steps: int = Field(16, ge=1, validation_alias=_env("GEORGE_MAX_CONCURRENT_STEPS"))
    lease_seconds: float = Field(10, gt=0, validation_alias=_env("GEORGE_LEASE_SECONDS"))
    reconcile_seconds: float = Field(10, gt=0, validation_alias=_env("GEORGE_RECONCILE_SECONDS"))
    reaction_sweep_seconds: float = Field(
        120, gt=0, validation_alias=_env("GEORGE_REACTION_SWEEP_SECONDS")
    )
    git_poll_seconds: float = Field(30, gt=0, validation_alias=_env("GEORGE_GIT_POLL_SECONDS"))
    approve_reactions: Annotated[tuple[str, ...], NoDecode] = Field(
        ("white_check_mark", "heavy_check_mark"), validation_alias=_env("GEORGE_APPROVE_REACTIONS")
    )
    reject_reactions: Annotated[tuple[str, ...], NoDecode] = Field(
        ("x",), validation_alias=_env("GEORGE_REJECT_REACTIONS")
    )
    slack_bot_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_api_url: str | None = Field(None, validation_alias=_env("SLACK_API_URL"))
    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_env("ANTHROPIC_API_KEY"))
    anthropic_base_url: str | None = Field(None, validation_alias=_env("ANTHROPIC_BASE_URL"))
    sandbox: Literal["auto", "bubblewrap", "unconfined", "off"] = Field(
        "auto", validation_alias=_env("GEORGE_SANDBOX")
    )
    secrets_dir: Path | None = Field(None, validation_alias=_env("GEORGE_SECRETS_DIR"))
    port: int = Field(8080, validation_alias=_env("PORT"))
    host: str = Field("", validation_alias=_env("GEORGE_HOST"))
    """The address PORT listens on; blank (the default) is chosen by `_choose_host`."""
    local_slack_port: int = Field(3000, validation_alias=_env("GEORGE_LOCAL_SLACK_PORT"))
    write_branch_prefix: str | None = Field(None, validation_alias=_env("GEORGE_WRITE_BRANCH_PREFIX"))
    """Jobs started from Slack are pushed to `<prefix><job>` for review, not to the branch."""
    url: str | None = Field(None, validation_alias=_env("GEORGE_URL"))
    """George's own server as its steps reach it (`{{ george.url }}`, the grant `self`);
    unset: http://<GEORGE_HOST, or 127.0.0.1 when it listens everywhere>:<PORT>."""

    @property
    def george_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @field_validator("approve_reactions", "reject_reactions", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().strip(":") for part in value.split(",") if part.strip())
        return value

    @field_validator("host", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _choose_host(self) -> Settings:
        # The environment, not `model_fields_set`: `Settings(port=…)` in code or a test is no
        # platform and stays on this machine.
        if not self.host:
            self.host = PLATFORM_HOST if "PORT" in os.environ else LOCAL_HOST
        return self

    @property
    def uses_local_slack(self) -> bool:
        """No Slack tokens: George runs and talks to the local Slack (DESIGN, transport)."""
        return not any((self.slack_bot_token, self.slack_app_token, self.slack_signing_secret))

    @field_validator(
        "slack_bot_token",
        "slack_app_token",
        "slack_signing_secret",
        "anthropic_api_key",
        "slack_api_url",
        "anthropic_base_url",
        "branch",
        "secrets_dir",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value


SECRET_PREFIX = "GEORGE_SECRET_"


def environment_secrets() -> dict[str, str]:
    """George's `GEORGE_SECRET_NAME` variables, by NAME: values steps may be granted."""
    return {k[len(SECRET_PREFIX):]: v for k, v in os.environ.items()
            if k.startswith(SECRET_PREFIX) and len(k) > len(SECRET_PREFIX)}


LIMIT_PREFIX = "GEORGE_LIMIT_"


def environment_limits() -> dict[str, str]:
    """The `GEORGE_LIMIT_<NAME>` variables that raise or lower the manifests' budgets."""
    return {k: v for k, v in os.environ.items() if k.startswith(LIMIT_PREFIX)}
