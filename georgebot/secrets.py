"""The secrets AgentSpecs grant to steps, and the masking of their values in all George keeps.

A secret NAME comes from the file `GEORGE_SECRETS_DIR/NAME` (as container platforms mount
them), else from George's environment variable `GEORGE_SECRET_NAME` (read by `config.py`).
`ShellRunner` hands granted values to a step's sandbox; everything a step produces passes
`mask` before it is stored, posted, logged or sent to a model, as CI systems mask theirs.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from georgebot.config import SECRET_PREFIX as ENV_PREFIX

MIN_LENGTH = 8  # a shorter value would mask ordinary words: it is refused
MASK = "********"
NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# A granted secret becomes an environment variable of the step: never one George sets itself.
RESERVED = frozenset({"PATH", "HOME", "LANG", "PWD", "SHELL", "USER", "LD_PRELOAD", "LD_LIBRARY_PATH"})


def reserved(name: str) -> bool:
    return name in RESERVED or name.startswith("GEORGE_")


@dataclass(frozen=True)
class Lookup:
    """A secret's value, or why George cannot give it."""

    value: str | None
    why: str = ""


class Secrets:
    """Thread-safe; values read from the folder are read again on every lookup, so a secret
    mounted after start is found without a restart."""

    def __init__(self, folder: Path | None = None, environment: Mapping[str, str] | None = None) -> None:
        self.folder = folder
        self._environment = dict(environment or {})
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        for value in self._environment.values():
            self._learn(value)
        for name in self._folder_names():
            self.lookup(name)

    def lookup(self, name: str) -> Lookup:
        value, where = self._read(name)
        if value is None:
            places = [f"the file {self.folder / name}" if self.folder else "a file in GEORGE_SECRETS_DIR",
                      f"the environment variable {ENV_PREFIX}{name}"]
            return Lookup(None, f"George has no secret {name}: provide it as " + " or ".join(places))
        self._learn(value)
        if len(value) < MIN_LENGTH:
            return Lookup(None, f"secret {name} (from {where}) is shorter than {MIN_LENGTH} "
                                "characters, too short to be masked safely: George refuses it")
        return Lookup(value)

    def refused(self) -> list[str]:
        """What George cannot use, said once at start: secrets too short to mask."""
        names = sorted({*self._environment, *self._folder_names()})
        return [why for name in names if (why := self.lookup(name).why) and "shorter" in why]

    def also_mask(self, values: Iterable[str]) -> None:
        """George's own credentials (tokens, keys): never granted, masked all the same."""
        for value in values:
            self._learn(value)

    def mask(self, text: str) -> str:
        """`text` with every known value, and each of its lines, masked."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def _read(self, name: str) -> tuple[str | None, str]:
        if not NAME.match(name):
            return None, ""
        if self.folder is not None:
            try:
                raw = (self.folder / name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                pass
            else:
                return raw.rstrip("\r\n"), f"{self.folder / name}"
        if name in self._environment:
            return self._environment[name], f"{ENV_PREFIX}{name}"
        return None, ""

    def _folder_names(self) -> Iterable[str]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if NAME.match(p.name) and p.is_file())

    def _learn(self, value: str) -> None:
        """Every value George has is masked, its lines too (a key file's line is still a
        secret); parts shorter than MIN_LENGTH are not, or every `a` would vanish."""
        parts = {value, *value.splitlines()}
        fresh = {p for p in parts if len(p.strip()) >= MIN_LENGTH} - self._known
        if not fresh:
            return
        with self._lock:
            self._known |= fresh
            ordered = sorted(self._known, key=len, reverse=True)  # the longest match wins
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))


class MaskingFilter(logging.Filter):
    """Masks secret values in every log record that passes a handler."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._secrets.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if self._secrets.mask(text) != text:
                record.exc_text = self._secrets.mask(text)
        return True
