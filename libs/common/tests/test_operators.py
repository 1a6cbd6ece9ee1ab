"""The operator credential: digests only, constant-time match, off unless configured."""

import hashlib
from types import SimpleNamespace

import pytest

from osmcloud_common.errors import Forbidden, NotFound, Unauthorized
from osmcloud_common.operators import OperatorTokens, digest_problems, token_digest
from osmcloud_common.settings import ServiceSettings

TOKEN = "a" * 64
OTHER = "b" * 64


def request(authorization: str | None):
    return SimpleNamespace(headers={"Authorization": authorization} if authorization else {})


def test_off_unless_configured():
    with pytest.raises(NotFound) as info:
        OperatorTokens("").operator_of(request(f"Bearer {TOKEN}"))
    assert info.value.code == "admin_api_disabled"


def test_the_right_token_names_its_operator_and_others_are_refused():
    tokens = OperatorTokens(f"{token_digest(OTHER)}, {token_digest(TOKEN).upper()}")
    expected = f"operator:{hashlib.sha256(TOKEN.encode()).hexdigest()[:12]}"
    assert tokens.operator_of(request(f"Bearer {TOKEN}")) == expected
    with pytest.raises(Forbidden):
        tokens.operator_of(request("Bearer a-users-device-token"))
    with pytest.raises(Forbidden):  # the digest itself is not the token
        tokens.operator_of(request(f"Bearer {token_digest(TOKEN)}"))
    for missing in (None, "Basic x", "Bearer "):
        with pytest.raises(Unauthorized):
            tokens.operator_of(request(missing))


def test_a_setting_that_is_not_digests_stops_the_service():
    assert digest_problems("") == [] and digest_problems(token_digest(TOKEN)) == []
    assert digest_problems("my-plain-token")
    settings = ServiceSettings(gateway_secret="x" * 32, operator_token_sha256="my-plain-token")
    assert any("OPERATOR_TOKEN_SHA256" in p for p in settings.startup_problems())
