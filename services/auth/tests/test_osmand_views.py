from datetime import UTC, datetime

import pytest

from osmcloud_auth.errors import InvalidEmail
from osmcloud_auth.osmand_compat import osmand_error
from osmcloud_auth.osmand_views import compat_email, device_json, java_medium_date, user_json
from osmcloud_common.osmand import ErrorCode, OsmandError, device_credentials


@pytest.mark.parametrize("moment, text", [
    (datetime(2026, 8, 22, 9, 26, 24, tzinfo=UTC), "Aug 22, 2026, 9:26:24 AM"),
    (datetime(2026, 1, 3, 0, 5, 9, tzinfo=UTC), "Jan 3, 2026, 12:05:09 AM"),
    (datetime(2026, 12, 31, 12, 0, 0, tzinfo=UTC), "Dec 31, 2026, 12:00:00 PM"),
    (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "Dec 31, 2026, 11:59:59 PM"),
])
def test_dates_read_like_javas_medium_format(moment, text):
    assert java_medium_date(moment) == text


@pytest.mark.parametrize("raw", [None, "", "plain", "a@b", "a b@c.de"])
def test_malformed_emails_are_101(raw):
    with pytest.raises((OsmandError, InvalidEmail)) as info:
        compat_email(raw)
    error = osmand_error(info.value) if isinstance(info.value, InvalidEmail) else info.value
    assert error.body()["error"]["errorCode"] == ErrorCode.EMAIL_INVALID == 101
    assert error.status == 400


def test_device_json_has_the_five_strings_the_app_reads():
    body = device_json({"num": 7, "user_num": 3, "phone_id": "uuid-1", "token": "t",
                        "created_at": datetime(2026, 8, 22, 9, 26, 24, tzinfo=UTC)})
    assert body == {"id": "7", "userid": "3", "deviceid": "uuid-1", "accesstoken": "t",
                    "udpatetime": "Aug 22, 2026, 9:26:24 AM"}


def test_user_json_carries_orderid():
    body = user_json({"email": "a@b.cd", "created_at": datetime(2026, 1, 1, tzinfo=UTC)}, 5)
    assert body["id"] == 5 and body["orderid"] is None and body["email"] == "a@b.cd"


@pytest.mark.parametrize("params", [{}, {"deviceid": "1"}, {"accessToken": "x"},
                                    {"deviceid": "not-a-number", "accessToken": "x"}])
def test_bad_device_credentials_are_105(params):
    with pytest.raises(OsmandError) as info:
        device_credentials(params)
    assert info.value.error_code == 105


def test_device_credentials_parse():
    assert device_credentials({"deviceid": " 12 ", "accessToken": "abc"}) == (12, "abc")
