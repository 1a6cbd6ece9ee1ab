"""The chaos run's second files replica: the rendered gateway configuration gets it as a
second server of files' upstream, with the template's own parameters, and nothing else
changes; nginx accepts the result."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from osmcloud_localstack.chaos_replica import with_second_server
from osmcloud_localstack.gateway import write_gateway_config
from osmcloud_localstack.paths import repo_root

UPSTREAMS = {"auth": "127.0.0.1:1001", "files": "127.0.0.1:1002", "trash": "127.0.0.1:1003",
             "billing": "127.0.0.1:1004", "s3": "127.0.0.1:1005"}


def rendered(tmp_path: Path) -> tuple[Path, Path]:
    conf = write_gateway_config(repo=repo_root(), prefix=tmp_path / "nginx", logs=tmp_path / "logs",
                                listen="127.0.0.1:1000", upstreams=UPSTREAMS, gateway_secret="s3cret")
    return conf, tmp_path / "nginx" / "conf.d" / "default.conf"


def servers(text: str, upstream: str) -> list[str]:
    block = re.search(rf"upstream {upstream} \{{(.*?)\}}", text, re.S)
    assert block, upstream
    return re.findall(r"^\s*server (.+);$", block.group(1), re.M)


def test_the_second_replica_is_a_second_server_of_files_upstream_with_the_same_parameters(tmp_path):
    _, default = rendered(tmp_path)
    before = default.read_text()
    after = with_second_server(before, "127.0.0.1:2002")
    first, second = servers(after, "osmcloud_files")
    assert first.startswith("127.0.0.1:1002 ") and "max_fails=" in first
    assert second == first.replace("127.0.0.1:1002", "127.0.0.1:2002")
    for other in ("osmcloud_auth", "osmcloud_trash", "osmcloud_billing", "osmcloud_s3"):
        assert servers(after, other) == servers(before, other)
    assert after.replace(f"\n    server {second};", "", 1) == before


def test_a_configuration_without_files_upstream_is_refused():
    with pytest.raises(ValueError, match="osmcloud_files"):
        with_second_server("upstream osmcloud_auth {\n    server 127.0.0.1:1;\n}\n", "127.0.0.1:2")


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="no nginx")
def test_nginx_accepts_the_configuration_with_two_files_servers(tmp_path):
    conf, default = rendered(tmp_path)
    default.write_text(with_second_server(default.read_text(), "127.0.0.1:2002"))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run([nginx, "-t", "-c", str(conf), "-p", f"{tmp_path / 'nginx'}/", "-e",
                              str(tmp_path / "logs" / "error.log")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
