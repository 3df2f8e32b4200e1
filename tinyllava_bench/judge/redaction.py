"""Credentials out of everything the tool prints or writes: a judge URL's user:password and query values, the key.

A judge endpoint may carry secrets in its URL (`https://user:pass@proxy/v1`, `...?api-key=...`), and a server's
error text may echo the URL or the key back; every message, samples file, cache entry and log line that can hold
such text goes through `redact_url` or a `Redactor` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

MASK = "***"
# Shorter secrets are not worth hiding and replacing them would mangle ordinary text (a local server's key "x").
MIN_SECRET_LENGTH = 4
# `scheme://anything@` in free text: the userinfo of any URL an error message quotes
# An API key is replaced only from this length: local servers take any key, often a word such as "test".
MIN_KEY_LENGTH = 8
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")


def redact_url(url: str | None) -> str | None:
    """`https://user:secret@host/v1?api-key=x` -> `https://***@host/v1?api-key=***`: safe to print or store."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair else pair for pair in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", parts.fragment))


class Redactor:
    """Replaces the secrets of one judge endpoint (its URL's credentials and query values, the API key) in text."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None) -> None:
        secrets: set[str] = set()
        self._parameters: list[str] = []
        if base_url:
            parts = urlsplit(base_url)
            if "@" in parts.netloc:
                userinfo = parts.netloc.rsplit("@", 1)[0]
                # the password (or a bare token: `https://TOKEN@host`); a user name alone is no secret
                password = userinfo.split(":", 1)[-1]
                secrets.update([userinfo, unquote(userinfo), password, unquote(password)])
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                self._parameters.append(name)
                secrets.add(value)
            secrets.update(pair.split("=", 1)[1] for pair in parts.query.split("&") if "=" in pair)
        secrets = {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH}
        if api_key and len(api_key) >= MIN_KEY_LENGTH:
            secrets.add(api_key)
        # the whole URL first, by its masked form (the reader still sees which endpoint), then each secret,
        # longest first so that a secret holding another is replaced whole
        self._replacements = [(secret, MASK) for secret in sorted(secrets, key=len, reverse=True)]
        if base_url and redact_url(base_url) != base_url:
            self._replacements.insert(0, (base_url, str(redact_url(base_url))))

    def __call__(self, text: str) -> str:
        for secret, replacement in self._replacements:
            text = text.replace(secret, replacement)
        for name in self._parameters:  # `api-key=<short value>` still loses its value
            text = re.sub(rf"(?<![\w-]){re.escape(name)}=[^&\s'\"]*", f"{name}={MASK}", text)
        return _USERINFO.sub(lambda match: match.group("scheme") + MASK + "@", text)
