"""Secrets in URLs, kept out of everything George prints, stores or names a folder after.

`redact` masks a URL's userinfo (`user:token@`; an ssh URL keeps a user without a password)
and the values of query and fragment parameters that look like credentials; `redact_text`
does the same to every URL inside free text (git's stderr, an HTTP client's error).
`manifests/gitrepo.py`, `manifests/source.py` and `agents/http.py` call them. Pure string
surgery: the rest of a URL is left exactly as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus

MASK = "***"

# Parameter names (or the words of one, split at `-`, `_`, `.`) that carry a credential.
_WORDS = frozenset({
    "token", "key", "apikey", "password", "passwd", "pwd", "pass", "secret", "sig", "signature",
    "auth", "authorization", "credential", "credentials", "session", "jwt",
})
_ENDINGS = ("token", "secret", "password", "passwd", "apikey", "signature")  # accessToken, apiKey
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_SSH = frozenset({"ssh", "git+ssh", "ssh+git"})  # `ssh://git@host/…`: a user name, never a token
_MIN_LITERAL = 6  # a shorter value is not masked wherever it appears: it would mangle words


def is_credential(name: str) -> bool:
    """`token`, `access_token`, `X-Amz-Signature`, `apiKey`, `client_secret`: True."""
    lowered = unquote_plus(name).strip().lower()
    words = [w for w in re.split(r"[-_.\s]+", lowered) if w]
    return any(w in _WORDS for w in words) or lowered.replace("-", "").replace("_", "").endswith(_ENDINGS)


CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def is_credential_header(name: str) -> bool:
    """`Authorization`, `Cookie`, `X-Api-Key`, `Private-Token`: headers whose values are
    credentials (never sent to another origin, never shown to people)."""
    return name.strip().lower() in CREDENTIAL_HEADERS or is_credential(name)


def redact(url: str) -> str:
    """`https://x-access-token:s3cr3t@host/r.git?ref=main&token=t` →
    `https://***@host/r.git?ref=main&token=***`. Text that is not a URL comes back unchanged,
    but for credential-like `name=value` pairs after a `?` or `#`."""
    scheme_end = url.find("://")
    head, rest = "", url
    if scheme_end >= 0 and _is_scheme(url[:scheme_end]):
        start = scheme_end + 3
        end = _first(url, "/?#", start)
        authority = url[start:end]
        if "@" in authority:
            userinfo, at = authority[: authority.rindex("@")], authority.rindex("@")
            ssh_user = url[:scheme_end].lower() in _SSH and ":" not in userinfo  # keys, not tokens
            authority = authority if ssh_user else MASK + authority[at:]
        head, rest = url[:start] + authority, url[end:]
    hash_at = rest.find("#")
    fragment = rest[hash_at:] if hash_at >= 0 else ""
    before = rest[:hash_at] if hash_at >= 0 else rest
    query_at = before.find("?")
    if query_at >= 0:
        before = before[: query_at + 1] + _params(before[query_at + 1:])
    if fragment:
        fragment = "#" + _params(fragment[1:])
    return head + before + fragment


def redact_text(text: str, also: Iterable[str] = ()) -> str:
    """`text` with every URL in it redacted, and each of `also` (the secrets of a URL George
    was given, from `secrets_in`) masked wherever it appears, as some tools print it decoded."""
    text = _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)
    for secret in sorted(set(also), key=len, reverse=True):
        if len(secret) >= _MIN_LITERAL:
            text = text.replace(secret, MASK)
    return text


def secrets_in(url: str) -> list[str]:
    """What `redact` masks in `url`, as written and percent-decoded: the userinfo, its
    password, and the values of credential parameters."""
    found: list[str] = []
    scheme_end = url.find("://")
    if scheme_end >= 0 and _is_scheme(url[:scheme_end]):
        start = scheme_end + 3
        authority = url[start:_first(url, "/?#", start)]
        if "@" in authority:
            userinfo = authority[: authority.rindex("@")]
            if not (url[:scheme_end].lower() in _SSH and ":" not in userinfo):
                found += [userinfo, *userinfo.split(":", 1)[1:]]
    for part in re.split(r"[?#&;]", url.partition("?")[2] + "&" + url.partition("#")[2]):
        name, eq, value = part.partition("=")
        if eq and value and is_credential(name):
            found.append(value)
    return sorted({v for s in found for v in (s, unquote(s), unquote_plus(s)) if v})


def _params(query: str) -> str:
    parts = re.split(r"([&;])", query)
    for i in range(0, len(parts), 2):
        name, eq, value = parts[i].partition("=")
        if eq and value and is_credential(name):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def _is_scheme(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", text))


def _first(text: str, chars: str, start: int) -> int:
    found = [i for c in chars if (i := text.find(c, start)) >= 0]
    return min(found) if found else len(text)
