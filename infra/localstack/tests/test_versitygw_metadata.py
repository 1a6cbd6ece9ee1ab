"""Where the local stack tells versitygw to keep object metadata."""

from osmcloud_localstack.stack import supports_user_xattrs, versitygw_metadata_args


def test_fresh_store_uses_xattrs_where_the_filesystem_has_them(tmp_path):
    data, sidecar = tmp_path / "s3data", tmp_path / "s3meta-sidecar"
    data.mkdir()
    args = versitygw_metadata_args(data, sidecar)
    if supports_user_xattrs(data):
        assert args == [] and not sidecar.exists()
    else:
        assert args == ["--sidecar", str(sidecar)] and sidecar.is_dir()
    assert list(data.iterdir()) == []  # the probe leaves nothing behind


def test_store_with_a_sidecar_tree_keeps_it(tmp_path):
    data, sidecar = tmp_path / "s3data", tmp_path / "s3meta-sidecar"
    data.mkdir()
    (sidecar / "bucket" / "key").mkdir(parents=True)
    assert versitygw_metadata_args(data, sidecar) == ["--sidecar", str(sidecar)]


def test_probe_answers_no_for_a_missing_directory(tmp_path):
    assert supports_user_xattrs(tmp_path / "missing") is False
