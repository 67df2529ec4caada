"""Masking of secrets in any text azid shows: messages, excerpts, logs (PROTOCOL.md §0.7).

Three layers, applied in order: the verbatim secrets the credential holds, the values of
token-bearing JSON keys, and anything shaped like a JWT. Excerpts are cut to 500 characters after
masking, so a cut can never expose the middle of a secret.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MASK", "excerpt", "mask"]

MASK = "****"
EXCERPT_LIMIT = 500

_SECRET_KEYS = (
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "accessToken",
    "client_secret",
    "client_assertion",
    "assertion",
    "code",
    "device_code",
    "oidcToken",
)
_KEYS = "|".join(_SECRET_KEYS)
# `"key": "value` in JSON-ish text: the value runs to the next unescaped quote (or the end of the
# text, when the excerpt was cut inside it).
_JSON_VALUE = re.compile(r'("(?:' + _KEYS + r')"\s*:\s*")(?:[^"\\]|\\.)*("?)')
# `key=value` in form or query text.
_FORM_VALUE = re.compile(r"(?<![\w-])((?:" + _KEYS + r")=)[^&\s]*")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+(?:\.[\w-]*)?")


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret, token-bearing value and JWT-shaped run replaced by `****`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _JSON_VALUE.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    text = _FORM_VALUE.sub(lambda m: m.group(1) + MASK, text)
    return _JWT.sub(MASK, text)


def excerpt(data: bytes | str, secrets: Iterable[str] = ()) -> str:
    """A masked excerpt of a reply body, at most 500 characters."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    masked = mask(text, secrets)
    if len(masked) > EXCERPT_LIMIT:
        return masked[: EXCERPT_LIMIT - 1] + "…"
    return masked
