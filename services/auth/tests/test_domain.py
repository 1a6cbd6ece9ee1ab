from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_auth.domain import (
    CodeVerdict,
    StoredCode,
    digest,
    new_code,
    normalize_email,
    seconds_until,
    try_budget,
    verdict_without_match,
    yearly_guess_probability,
)
from osmcloud_auth.errors import InvalidEmail

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["", "plain", "a@b", "a b@c.de", "@c.de", "x@" + "d" * 260 + ".com",
                                 "a\x14b@c.de", "a@c\x7f.de"])  # control characters cannot be mailed
def test_malformed_emails_are_refused_with_a_message(raw):
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    assert "e-mail" in info.value.message


def test_emails_are_normalized():
    assert normalize_email("  Ann@Example.ORG ") == "ann@example.org"


def test_codes_are_numeric_of_the_configured_length():
    codes = {new_code(6) for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150


def _code(code="123456", address="address:a", used=False, expires=NOW + timedelta(hours=1)):
    return StoredCode("id-" + code + address, address, digest(code), expires, used)


def test_a_try_from_elsewhere_spends_the_shared_budget_not_the_requesters():
    assert try_budget(_code(), "address:a", 5, 2) == ("attempts", 5)
    assert try_budget(_code(), "address:b", 5, 2) == ("attempts_elsewhere", 2)


def test_code_verdicts_when_nothing_matched():
    assert verdict_without_match([_code()], "654321", NOW, judged=True) is CodeVerdict.WRONG
    assert verdict_without_match([], "123456", NOW, judged=False) is CodeVerdict.UNKNOWN
    assert verdict_without_match([_code(used=True)], "123456", NOW, judged=False) is CodeVerdict.USED
    assert verdict_without_match([_code(used=True)], "654321", NOW, judged=False) is CodeVerdict.UNKNOWN
    assert verdict_without_match([_code(expires=NOW)], "123456", NOW, judged=False) is CodeVerdict.EXPIRED
    # a live code this address may no longer try: dead here even when right
    assert verdict_without_match([_code()], "123456", NOW, judged=False) is CodeVerdict.EXHAUSTED


def test_the_default_limits_keep_guessing_below_one_in_a_million_a_year():
    from osmcloud_auth.settings import AuthSettings
    s = AuthSettings(gateway_secret="x" * 32)
    assert s.yearly_guess_probability() <= 1e-6
    assert yearly_guess_probability(4, 5, 5) > 1  # what OsmAnd's reference allowed


# ---------------------------------------------------------------- request limits
def test_retry_after_is_whole_seconds_and_at_least_one():
    assert seconds_until(NOW + timedelta(seconds=29.2), NOW) == 30
    assert seconds_until(NOW, NOW) == 1
    assert seconds_until(NOW - timedelta(seconds=5), NOW) == 1


def test_client_addresses_are_keyed_by_ipv4_or_their_ipv6_64():
    from osmcloud_auth.limits import address_key
    assert address_key("203.0.113.9") == "address:203.0.113.9"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "address:2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.9") == "address:203.0.113.9"
    assert address_key(None) == address_key("nonsense") == "address:unknown"
