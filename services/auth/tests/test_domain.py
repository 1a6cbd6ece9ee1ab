from datetime import UTC, datetime, timedelta

import pytest

from osmcloud_auth.domain import (CodeVerdict, IssuedCode, digest, judge_code, new_code, normalize_email,
                                  seconds_until)
from osmcloud_common.errors import BadRequest

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["", "plain", "a@b", "a b@c.de", "@c.de", "x@" + "d" * 260 + ".com",
                                 "a\x14b@c.de", "a@c\x7f.de"])  # control characters cannot be mailed
def test_malformed_emails_are_refused_with_a_message(raw):
    with pytest.raises(BadRequest) as info:
        normalize_email(raw)
    assert "e-mail" in info.value.message


def test_emails_are_normalized():
    assert normalize_email("  Ann@Example.ORG ") == "ann@example.org"


def test_codes_are_numeric_of_the_configured_length():
    codes = {new_code(6) for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 150


def _issued(code="123456", attempts=0, used=False, expires=NOW + timedelta(hours=1)):
    return IssuedCode(digest(code), expires, attempts, used)


def test_code_verdicts():
    assert judge_code(_issued(), "123456", NOW, 5) is CodeVerdict.OK
    assert judge_code(_issued(), "654321", NOW, 5) is CodeVerdict.WRONG
    assert judge_code(_issued(expires=NOW), "123456", NOW, 5) is CodeVerdict.EXPIRED
    assert judge_code(_issued(used=True), "123456", NOW, 5) is CodeVerdict.USED
    # the sixth try is refused even when it is right
    assert judge_code(_issued(attempts=5), "123456", NOW, 5) is CodeVerdict.EXHAUSTED


# ---------------------------------------------------------------- request limits
def test_retry_after_is_whole_seconds_and_at_least_one():
    assert seconds_until(NOW + timedelta(seconds=29.2), NOW) == 30
    assert seconds_until(NOW, NOW) == 1
    assert seconds_until(NOW - timedelta(seconds=5), NOW) == 1
