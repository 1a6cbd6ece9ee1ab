"""Credentials are stored readable by their owner only, and a readable file is refused."""

import os
import stat

import pytest

from osmcloud_cli import config
from osmcloud_cli.errors import CliError, NotLoggedIn

CREDS = config.Credentials(server="http://127.0.0.1:8080", email="a@example.test", token="secret-token",
                           user_id="u1", device_id="d1", folder="/tmp/f")


def test_saved_with_user_only_permissions_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        path = config.save(tmp_path / "cfg", CREDS)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700
    assert config.load(tmp_path / "cfg") == CREDS
    assert [p.name for p in (tmp_path / "cfg").iterdir()] == ["credentials.json"]  # no temporary file left


def test_a_file_others_can_read_is_refused(tmp_path):
    path = config.save(tmp_path, CREDS)
    path.chmod(0o644)
    with pytest.raises(CliError) as refused:
        config.load(tmp_path)
    assert refused.value.code == "insecure_credentials" and "chmod 600" in refused.value.message


def test_missing_or_damaged_credentials_say_how_to_log_in(tmp_path):
    with pytest.raises(NotLoggedIn, match="osmcloud login"):
        config.load(tmp_path)
    config.save(tmp_path, CREDS)
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(NotLoggedIn, match="damaged"):
        config.load(tmp_path)
