"""Masking of secrets in shown text (PROTOCOL.md §0.7)."""

from __future__ import annotations

import pytest

from azid_core.redact import EXCERPT_LIMIT, MASK, excerpt, mask

SECRET_KEYS = [
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
]
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_mask_constant() -> None:
    assert MASK == "****"
    assert EXCERPT_LIMIT == 500


def test_verbatim_secrets() -> None:
    assert mask("pw=hunter2 and again hunter2!", ["hunter2"]) == "pw=**** and again ****!"
    assert mask("a s1 b s2 c", ("s1", "s2")) == "a **** b **** c"
    assert mask("regex .* chars", [".*"]) == "regex **** chars"
    # An empty secret would match everywhere: it is skipped.
    assert mask("plain text", ["", "zzz"]) == "plain text"
    assert mask("nothing secret here") == "nothing secret here"
    # Any iterable of secrets, consumed once.
    assert mask("x-abc-y", iter(["abc"])) == "x-****-y"


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_json_values_of_token_keys(key: str) -> None:
    assert mask(f'{{"{key}": "v@lue-1", "other": "keep"}}') == f'{{"{key}": "****", "other": "keep"}}'
    assert mask(f'{{"{key}":"v"}}') == f'{{"{key}":"****"}}'
    assert mask(f'{{"{key}" :\n "v"}}') == f'{{"{key}" :\n "****"}}'


def test_json_values_with_escapes_and_cut_text() -> None:
    assert mask(r'{"access_token": "a\"b\\c", "x": 1}') == '{"access_token": "****", "x": 1}'
    # An excerpt cut inside the value: masked to the end.
    assert mask('{"refresh_token": "0.AAAA-abcdef') == '{"refresh_token": "****'
    assert mask('{"refresh_token": ""}') == '{"refresh_token": "****"}'


def test_json_similar_keys_and_non_string_values_are_kept() -> None:
    text = '{"token_type": "Bearer", "expires_in": 3599, "my_token": "x", "token": 42}'
    assert mask(text) == text
    assert mask('{"Token": "x"}') == '{"Token": "x"}'


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_form_values_of_token_keys(key: str) -> None:
    assert mask(f"grant_type=x&{key}=s3cr3t%2B&scope=a") == f"grant_type=x&{key}=****&scope=a"
    assert mask(f"{key}=abc def") == f"{key}=**** def"
    assert mask(f"?{key}=abc") == f"?{key}=****"


def test_form_keys_must_stand_alone() -> None:
    assert mask("my_code=1&x-code=2&barcode=3") == "my_code=1&x-code=2&barcode=3"
    assert mask("response_code=200") == "response_code=200"
    # access_token= is its own key; "token=" inside it is not matched separately.
    assert mask("access_token=abc&token=def") == "access_token=****&token=****"


@pytest.mark.parametrize(
    "text",
    [
        JWT,
        "eyJhbGciOi.eyJzdWIi",  # two segments
        "eyJhbGciOi.eyJzdWIi.",  # empty signature
        "eyJ0-_x.y_-z.s-_",
    ],
)
def test_jwt_shaped_runs(text: str) -> None:
    assert mask(text) == MASK
    assert mask(f"Bearer {text}, more") == "Bearer ****, more"


def test_not_jwt_shaped() -> None:
    for text in ("eyJ", "eyJhbGciOi", "eyJ.abc", "eyJab.", "xeyJ", "EYJabc.def", "ey.Jabc.def"):
        assert mask(text) == text


def test_layers_combine() -> None:
    text = f'{{"access_token": "{JWT}", "hint": "code=abc {JWT} pw=hunter2"}}'
    assert mask(text, ["hunter2"]) == '{"access_token": "****", "hint": "code=**** **** pw=****"}'


def test_excerpt_decodes_bytes() -> None:
    assert excerpt(b"plain") == "plain"
    assert excerpt(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert excerpt("text", ["x"]) == "te****t"
    assert excerpt(b"") == ""


def test_excerpt_limit() -> None:
    assert excerpt("a" * 500) == "a" * 500
    cut = excerpt("a" * 501)
    assert len(cut) == 500
    assert cut == "a" * 499 + "…"
    assert len(excerpt(b"b" * 10_000)) == 500


def test_excerpt_masks_before_cutting() -> None:
    secret = "S" * 10 + "-secret-" + "T" * 10
    text = "x" * 490 + secret + "y" * 20
    cut = excerpt(text, [secret])
    assert len(cut) <= 500
    assert "SSSSS" not in cut
    assert cut == "x" * 490 + "****" + "y" * 5 + "…"
    # A JWT straddling the limit is masked whole, not cut into a half that no longer looks like one.
    near = excerpt("z" * 480 + JWT)
    assert near == "z" * 480 + "****"
    json_cut = excerpt('{"pad": "' + "p" * 470 + '", "access_token": "' + "v" * 100 + '"}')
    assert "vvv" not in json_cut
