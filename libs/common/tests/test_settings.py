"""Every service refuses to start, naming the variable, without the secrets it needs."""

import pytest

from osmcloud_common.settings import ConfigurationError, ServiceSettings

STRONG = "a-long-random-value-0123456789"


class S3Settings(ServiceSettings):
    uses_s3 = True


@pytest.mark.parametrize("secret", ["", "change-me", "osmcloud-secret", "CHANGEME", "short-secret"])
def test_a_missing_published_or_short_gateway_secret_is_refused_by_name(secret):
    with pytest.raises(ConfigurationError, match="GATEWAY_SECRET"):
        ServiceSettings(gateway_secret=secret).check_startup()


def test_a_strong_gateway_secret_is_enough_for_a_service_without_blobs():
    ServiceSettings(gateway_secret=STRONG).check_startup()


@pytest.mark.parametrize("access, secret, named", [
    ("", STRONG, "S3_ACCESS_KEY"), ("osmcloud", STRONG, "S3_ACCESS_KEY"),
    ("files-key", "", "S3_SECRET_KEY"), ("files-key", "osmcloud-secret", "S3_SECRET_KEY")])
def test_a_service_with_blobs_needs_real_s3_keys(access, secret, named):
    with pytest.raises(ConfigurationError, match=named):
        S3Settings(gateway_secret=STRONG, s3_access_key=access, s3_secret_key=secret).check_startup()
    S3Settings(gateway_secret=STRONG, s3_access_key="files-key", s3_secret_key=STRONG).check_startup()


def test_every_problem_is_named_at_once(monkeypatch):
    monkeypatch.delenv("GATEWAY_SECRET", raising=False)
    with pytest.raises(ConfigurationError) as refused:
        S3Settings().check_startup()
    assert all(name in str(refused.value) for name in ("GATEWAY_SECRET", "S3_ACCESS_KEY", "S3_SECRET_KEY"))
