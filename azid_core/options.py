"""Checks and shaping of per-call options: scopes, claims and CAE (PROTOCOL.md §0.2, §1.4)."""

from __future__ import annotations

import json
import re

from .errors import ConfigError

__all__ = ["check_scopes", "merge_claims"]

_BAD_SCOPE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")  # whitespace, C0 and C1 controls


def check_scopes(scopes: tuple[str, ...], *, owner: str) -> tuple[str, ...]:
    """`scopes` if there is at least one and none holds whitespace or control characters."""
    if not scopes:
        raise ConfigError(f"{owner}: scopes is invalid: at least one scope is required")
    for scope in scopes:
        if not isinstance(scope, str) or not scope or not _plain_scope(scope):
            raise ConfigError(
                f"{owner}: scopes is invalid: {scope!r} is empty or holds whitespace or control characters"
            )
    return scopes


def _plain_scope(scope: str) -> bool:
    if scope.isascii():  # the usual case, with str methods: a regular expression costs three times as much
        return scope.isprintable() and " " not in scope  # printable ASCII is \x20-\x7e
    return not _BAD_SCOPE.search(scope)


def merge_claims(claims: str | None, *, enable_cae: bool, owner: str) -> str | None:
    """The `claims` form field (§1.4): verbatim without CAE; with CAE, the caller's claims plus the
    `xms_cc` client capability `CP1`, re-serialized with json's default separators."""
    if claims is not None and not isinstance(claims, str):
        raise ConfigError(
            f"{owner}: claims is invalid: a JSON string is required, not {type(claims).__name__}"
        )
    if not enable_cae:
        return claims or None
    merged: object = {}
    if claims:
        try:
            merged = json.loads(claims)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            merged = None
    if not isinstance(merged, dict):
        raise ConfigError(f"{owner}: claims is invalid: with enable_cae it must be a JSON object")
    access = merged.setdefault("access_token", {})
    if not isinstance(access, dict):
        raise ConfigError(f"{owner}: claims is invalid: its access_token member must be a JSON object")
    access["xms_cc"] = {"values": ["CP1"]}
    return json.dumps(merged)
